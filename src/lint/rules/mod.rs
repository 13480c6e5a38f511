//! The rules. Each file holds one family: the rules' descriptions (`Rule` constants) and the
//! check that finds them. A check reads every object of the run and adds findings.

pub mod config_on_pvc;
pub mod coverage;
pub mod database_as_deployment;
pub mod duplicate;
pub mod hardcoded_ip;
pub mod host_path;
pub mod init_owner;
pub mod inline_code;
pub mod posture;
pub mod pvc_retention;
pub mod schema;
pub mod shared_volume;
pub mod statefulset_service;
pub mod suppression;
pub mod todo;

use super::objects::Object;
use super::report::{Finding, Rule};
use super::source::Path;

/// Every rule, in the order `--list-rules` shows them.
pub const RULES: &[&Rule] = &[
    &database_as_deployment::DATABASE_AS_DEPLOYMENT,
    &statefulset_service::STATEFULSET_SERVICE,
    &pvc_retention::PVC_RETENTION_UNAWARE,
    &hardcoded_ip::HARDCODED_POD_IP,
    &inline_code::INLINE_CODE,
    &shared_volume::RWX_DATABASE_VOLUME,
    &config_on_pvc::CONFIG_ON_PVC,
    &init_owner::INIT_OWNER_MISMATCH,
    &posture::MISSING_PROBE,
    &posture::MISSING_RESOURCES,
    &posture::RUNS_AS_ROOT,
    &posture::WRITABLE_ROOT_FILESYSTEM,
    &posture::CAPABILITIES_NOT_DROPPED,
    &posture::MISSING_SECCOMP_PROFILE,
    &posture::UNPINNED_IMAGE,
    &posture::PRIVILEGED_CONTAINER,
    &posture::HOST_NETWORK,
    &posture::HOST_PORT,
    &coverage::MISSING_NETWORK_POLICY,
    &coverage::MISSING_DISRUPTION_BUDGET,
    &host_path::HOSTPATH_VOLUME,
    &todo::UNFINISHED_TODO,
    &duplicate::DUPLICATE_OBJECT,
    &schema::UNKNOWN_FIELD,
    &schema::SCHEMA_ERROR,
    &schema::INVALID_YAML,
    &suppression::INVALID_SUPPRESSION,
    &suppression::UNUSED_SUPPRESSION,
];

pub fn find(id: &str) -> Option<&'static Rule> {
    RULES.iter().copied().find(|rule| rule.id == id)
}

/// Runs every check over the objects of a run.
pub fn check_all(objects: &[Object], out: &mut Findings) {
    let checks: &[fn(&[Object], &mut Findings)] = &[
        database_as_deployment::check,
        statefulset_service::check,
        pvc_retention::check,
        hardcoded_ip::check,
        inline_code::check,
        shared_volume::check,
        config_on_pvc::check,
        init_owner::check,
        posture::check,
        coverage::check,
        host_path::check,
        todo::check,
        duplicate::check,
    ];
    for check in checks {
        check(objects, out);
    }
}

/// Where checks put their findings.
#[derive(Debug, Default)]
pub struct Findings {
    pub(crate) items: Vec<Finding>,
}

impl Findings {
    /// A finding on `object`, at the line of the field at `path`.
    pub fn add(
        &mut self,
        rule: &'static Rule,
        object: &Object,
        path: &Path,
        message: impl Into<String>,
    ) -> &mut Finding {
        let line = object.line_of(path);
        self.push(rule, object, line, message.into())
    }

    /// A finding on `object`, at the first line of the field at `path` containing `needle`
    /// (a line inside a multi-line value, such as a script or a config file).
    pub fn add_at_text(
        &mut self,
        rule: &'static Rule,
        object: &Object,
        path: &Path,
        needle: &str,
        message: impl Into<String>,
    ) -> &mut Finding {
        let line = object.line_of_text(path, needle);
        self.push(rule, object, line, message.into())
    }

    /// A finding on `object` at a line found by the caller (1-based).
    pub fn add_at_line(
        &mut self,
        rule: &'static Rule,
        object: &Object,
        line: usize,
        message: impl Into<String>,
    ) -> &mut Finding {
        self.push(rule, object, line, message.into())
    }

    /// A finding on a document that is no object (invalid YAML).
    pub fn add_raw(&mut self, rule: &'static Rule, file: &str, line: usize, message: String) {
        self.items.push(Finding {
            rule: rule.id,
            severity: rule.severity,
            file: file.to_owned(),
            line,
            object: String::new(),
            message,
            fix: rule.fix.to_owned(),
            object_index: None,
        });
    }

    fn push(
        &mut self,
        rule: &'static Rule,
        object: &Object,
        line: usize,
        message: String,
    ) -> &mut Finding {
        self.items.push(Finding {
            rule: rule.id,
            severity: rule.severity,
            file: object.source.name.clone(),
            line,
            object: object.id(),
            message,
            fix: rule.fix.to_owned(),
            object_index: Some(object.index),
        });
        self.items.last_mut().expect("just pushed")
    }
}
