//! Seed 003: "The init container creates /data/counter.txt as root, but the main container runs
//! as appuser (UID 1000) and cannot write to it" (POST /increment returns 500).

use crate::lint::image;
use crate::lint::objects::Object;
use crate::lint::report::{Rule, Severity};
use crate::lint::rules::Findings;
use crate::lint::shell::{argv, chown_target, shell_script, writes_files};
use crate::lint::workload::{ContainerRef, Workload, workloads};

pub const INIT_OWNER_MISMATCH: Rule = Rule {
    id: "init-owner-mismatch",
    severity: Severity::Error,
    summary: "an init container writes into a volume as another user than the app container, \
        with no fsGroup covering it",
    explanation: "Files keep the owner of whoever created them. Seed 003's init container \
        creates /data/counter.txt as root, \"but the main container runs as appuser (UID 1000) \
        and cannot write to it\": every POST /increment returns 500, while reads and the \
        readiness probe keep working, so the pods look healthy. Found when an init container \
        mounts a volume read-write that an app container also mounts, writes into it (or runs \
        a program that cannot be inspected), runs as a different user than the app container \
        (an unset runAsUser means the image's own user: root for busybox, alpine and the like), \
        the pod sets no fsGroup, and the init container does not chown the files to the app's \
        user.",
    fix: "Set securityContext.fsGroup on the pod (the volume becomes group-owned and writable \
        by that group), or run the init container as the app's user, or chown what it creates \
        to the app's UID (chown 1000:1000 /data/counter.txt, as seed 003's fix does).",
};

/// Who a container runs as, as far as the manifest says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum User {
    Uid(i64),
    /// No runAsUser, a general-purpose image: root.
    ImageRoot,
    /// No runAsUser: whatever the image says.
    Image,
}

fn user(w: &Workload, c: &ContainerRef) -> User {
    match w.run_as_user(c.container) {
        Some(uid) => User::Uid(uid),
        None if c
            .container
            .image
            .as_deref()
            .is_some_and(image::runs_as_root_by_default) =>
        {
            User::ImageRoot
        }
        None => User::Image,
    }
}

fn describe(user: User, c: &ContainerRef) -> String {
    let image = c.container.image.as_deref().unwrap_or("its image");
    match user {
        User::Uid(0) | User::ImageRoot => "root".to_owned(),
        User::Uid(uid) => format!("UID {uid}"),
        User::Image => format!("the user of {image}"),
    }
}

/// Whether files written by `init` may not be writable by `app` (root can write anything).
fn differ(init: User, app: User, same_image: bool) -> bool {
    match (init, app) {
        (_, User::Uid(0) | User::ImageRoot) => false,
        (User::Uid(a), User::Uid(b)) => a != b,
        (User::ImageRoot, User::Uid(_)) => true,
        (User::Uid(0) | User::ImageRoot, User::Image) => !same_image,
        _ => false,
    }
}

/// Programs that only wait or look, when run without a shell.
const READ_ONLY_PROGRAMS: &[&str] = &[
    "sleep",
    "nslookup",
    "nc",
    "pg_isready",
    "true",
    "echo",
    "cat",
    "ls",
    "test",
];

/// Whether an init container may write files: a shell script that does, or any program whose
/// effect cannot be read off its command line (the image's own entrypoint included).
fn may_write(init: &ContainerRef, script: &str) -> bool {
    let has_command = init
        .container
        .command
        .as_ref()
        .is_some_and(|c| !c.is_empty());
    let is_shell = shell_script(&argv(init)).is_some();
    if !has_command {
        return true;
    }
    let program = init
        .container
        .command
        .iter()
        .flatten()
        .next()
        .map(|p| crate::lint::shell::program(p));
    writes_files(script) || (!is_shell && !program.is_some_and(|p| READ_ONLY_PROGRAMS.contains(&p)))
}

pub fn check(objects: &[Object], out: &mut Findings) {
    for w in workloads(objects) {
        if w.fs_group().is_some() {
            continue;
        }
        for init in w.init_containers() {
            let args = argv(&init);
            let script = match shell_script(&args) {
                Some(script) => script.text.to_owned(),
                None => args.iter().map(|a| a.text).collect::<Vec<_>>().join(" "),
            };
            if !may_write(&init, &script) {
                continue;
            }
            let init_user = user(&w, &init);
            for (k, mount) in init.container.volume_mounts.iter().flatten().enumerate() {
                if mount.read_only == Some(true) {
                    continue;
                }
                for app in w.app_containers() {
                    let uses_volume = app
                        .container
                        .volume_mounts
                        .iter()
                        .flatten()
                        .any(|m| m.name == mount.name);
                    if !uses_volume {
                        continue;
                    }
                    let app_user = user(&w, &app);
                    let same_image = init.container.image == app.container.image;
                    if !differ(init_user, app_user, same_image) {
                        continue;
                    }
                    let chowned = match (chown_target(&script), app_user) {
                        (Some(Some(uid)), User::Uid(app_uid)) => uid == app_uid,
                        (Some(_), _) => true,
                        (None, _) => false,
                    };
                    if chowned {
                        continue;
                    }
                    let message = format!(
                        "init container {} writes into volume {} as {}, and container {} runs as {}: \
                         it may not be able to write what the init container created",
                        init.container.name,
                        mount.name,
                        describe(init_user, &init),
                        app.container.name,
                        describe(app_user, &app),
                    );
                    out.add(
                        &INIT_OWNER_MISMATCH,
                        w.object,
                        &init.path.key("volumeMounts").index(k),
                        message,
                    );
                }
            }
        }
    }
}
