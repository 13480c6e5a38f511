//! Two objects with the same kind, namespace and name: `kubectl apply` keeps only the last, and
//! rules that look objects up by name could pick either.

use std::collections::HashMap;

use crate::lint::objects::Object;
use crate::lint::report::{Rule, Severity};
use crate::lint::rules::Findings;
use crate::lint::source::Path;

pub const DUPLICATE_OBJECT: Rule = Rule {
    id: "duplicate-object",
    severity: Severity::Warning,
    summary: "two objects with the same kind, namespace and name among the inputs",
    explanation: "Objects are identified by kind, namespace and name: applied together, the \
        second one silently replaces the first, so only one of two Services (or ConfigMaps, \
        or StatefulSets) of the same name ever exists. Linting a whole repository, the same \
        name often belongs to two applications in different folders, and a StatefulSet's \
        serviceName can then only be resolved by guessing (statelab lint prefers the Service \
        in the StatefulSet's own file, then its folder). Objects that name no namespace are \
        compared with each other only, since they go wherever they are applied. Identical \
        copies (an all-in-one file next to the same objects split into files) are not reported.",
    fix: "Rename one of them, give them different namespaces, or lint the applications \
        separately.",
};

pub fn check(objects: &[Object], out: &mut Findings) {
    let mut first: HashMap<(&str, Option<&str>, &str), &Object> = HashMap::new();
    for o in objects {
        // `generateName` objects get a fresh name each time they are created.
        if o.name.ends_with('*') || o.name == "(unnamed)" {
            continue;
        }
        let key = (o.kind.as_str(), o.namespace.as_deref(), o.name.as_str());
        match first.get(&key) {
            None => {
                first.insert(key, o);
            }
            // An identical copy (a lab's all-in-one file next to its split files) applies
            // the same either way.
            Some(earlier) if earlier.resource == o.resource => {}
            Some(earlier) => {
                let name_path = Path::root().key("metadata").key("name");
                let message = format!(
                    "{} is also defined, differently, at {}:{}: applied together, one replaces the other",
                    o.id(),
                    earlier.source.name,
                    earlier.line_of(&name_path)
                );
                out.add(&DUPLICATE_OBJECT, o, &name_path, message);
            }
        }
    }
}
