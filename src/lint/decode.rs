//! Decodes a parsed YAML value into a Kubernetes type, noting the path of every field the type
//! does not have and the path of a value of the wrong type.
//!
//! One small deserializer over `&Value` does all three jobs. Layered serde adapters (one to
//! collect ignored fields, one to track the path, one to erase the types between them) wrapped
//! every visitor of every Kubernetes type in several more: that code was most of the binary.
//! Here each type's decoder is compiled once, against this deserializer only.
//!
//! It reads YAML as serde_norway's own `Value` deserializer does: a sequence or a mapping may
//! be written as `null` (empty), numbers and strings are not converted into each other, and a
//! tagged value (`!tag x`) is refused.

use std::cell::RefCell;
use std::fmt;

use serde::de::value::StrDeserializer;
use serde::de::{
    self, DeserializeOwned, DeserializeSeed, IntoDeserializer, MapAccess, SeqAccess, Unexpected,
    Visitor,
};
use serde_norway::{Mapping, Number, Value};

use super::source::Path;

/// Decodes `value` as `T`, adding to `unknown` the path of each field `T` does not have. A
/// failure says where (the deepest field that did not decode) and why.
pub fn typed<T: DeserializeOwned>(
    value: &Value,
    unknown: &mut Vec<Path>,
) -> Result<T, (Path, String)> {
    let found = RefCell::new(Vec::new());
    let root = Path::root();
    let at = Tracked {
        value,
        path: &root,
        unknown: &found,
    };
    let result = T::deserialize(at).map_err(|e| (e.path.unwrap_or_default(), e.message));
    unknown.extend(found.into_inner());
    result
}

/// A decoding failure and, once known, the path of the value it is about.
#[derive(Debug)]
pub struct Error {
    message: String,
    path: Option<Path>,
}

impl Error {
    /// The innermost path wins: an error keeps the first path it is given on its way out.
    fn at(mut self, path: &Path) -> Error {
        if self.path.is_none() {
            self.path = Some(path.clone());
        }
        self
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

impl de::Error for Error {
    fn custom<M: fmt::Display>(message: M) -> Error {
        Error {
            message: message.to_string(),
            path: None,
        }
    }
}

/// One value of the document, where it sits, and where unknown fields are collected.
#[derive(Clone, Copy)]
struct Tracked<'v, 'u> {
    value: &'v Value,
    path: &'u Path,
    unknown: &'u RefCell<Vec<Path>>,
}

fn unexpected(value: &Value) -> Unexpected<'_> {
    match value {
        Value::Null => Unexpected::Unit,
        Value::Bool(b) => Unexpected::Bool(*b),
        Value::Number(n) => number_unexpected(n),
        Value::String(s) => Unexpected::Str(s),
        Value::Sequence(_) => Unexpected::Seq,
        Value::Mapping(_) => Unexpected::Map,
        Value::Tagged(_) => Unexpected::Enum,
    }
}

fn number_unexpected(n: &Number) -> Unexpected<'static> {
    if let Some(u) = n.as_u64() {
        Unexpected::Unsigned(u)
    } else if let Some(i) = n.as_i64() {
        Unexpected::Signed(i)
    } else {
        Unexpected::Float(n.as_f64().unwrap_or(f64::NAN))
    }
}

impl<'v> Tracked<'v, '_> {
    fn invalid<V: Visitor<'v>>(&self, visitor: &V) -> Error {
        de::Error::invalid_type(unexpected(self.value), visitor)
    }

    fn number<V: Visitor<'v>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.value {
            Value::Number(n) => {
                if let Some(u) = n.as_u64() {
                    visitor.visit_u64(u)
                } else if let Some(i) = n.as_i64() {
                    visitor.visit_i64(i)
                } else {
                    visitor.visit_f64(n.as_f64().unwrap_or(f64::NAN))
                }
            }
            _ => Err(self.invalid(&visitor)),
        }
    }

    fn string<V: Visitor<'v>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.value {
            Value::String(s) => visitor.visit_borrowed_str(s),
            _ => Err(self.invalid(&visitor)),
        }
    }

    fn sequence<V: Visitor<'v>>(self, visitor: V) -> Result<V::Value, Error> {
        let items: &[Value] = match self.value {
            Value::Sequence(items) => items,
            Value::Null => &[],
            _ => return Err(self.invalid(&visitor)),
        };
        let mut access = Items {
            items: items.iter().enumerate(),
            parent: self,
        };
        let decoded = visitor.visit_seq(&mut access)?;
        match access.items.len() {
            0 => Ok(decoded),
            _ => Err(de::Error::invalid_length(
                items.len(),
                &"fewer elements in sequence",
            )),
        }
    }

    fn mapping<V: Visitor<'v>>(self, visitor: V) -> Result<V::Value, Error> {
        static EMPTY: std::sync::OnceLock<Mapping> = std::sync::OnceLock::new();
        let mapping = match self.value {
            Value::Mapping(mapping) => mapping,
            Value::Null => EMPTY.get_or_init(Mapping::new),
            _ => return Err(self.invalid(&visitor)),
        };
        let mut access = Entries {
            entries: mapping.iter(),
            value: None,
            parent: self,
        };
        let decoded = visitor.visit_map(&mut access)?;
        match access.entries.len() {
            0 => Ok(decoded),
            _ => Err(de::Error::invalid_length(
                mapping.len(),
                &"fewer elements in map",
            )),
        }
    }
}

impl<'v> de::Deserializer<'v> for Tracked<'v, '_> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'v>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.value {
            Value::Null => visitor.visit_unit(),
            Value::Bool(b) => visitor.visit_bool(*b),
            Value::Number(_) => self.number(visitor),
            Value::String(_) => self.string(visitor),
            Value::Sequence(_) => self.sequence(visitor),
            Value::Mapping(_) => self.mapping(visitor),
            Value::Tagged(_) => Err(self.invalid(&visitor)),
        }
    }

    fn deserialize_bool<V: Visitor<'v>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.value {
            Value::Bool(b) => visitor.visit_bool(*b),
            _ => Err(self.invalid(&visitor)),
        }
    }

    fn deserialize_i64<V: Visitor<'v>>(self, visitor: V) -> Result<V::Value, Error> {
        self.number(visitor)
    }

    fn deserialize_u64<V: Visitor<'v>>(self, visitor: V) -> Result<V::Value, Error> {
        self.number(visitor)
    }

    fn deserialize_f64<V: Visitor<'v>>(self, visitor: V) -> Result<V::Value, Error> {
        self.number(visitor)
    }

    fn deserialize_str<V: Visitor<'v>>(self, visitor: V) -> Result<V::Value, Error> {
        self.string(visitor)
    }

    fn deserialize_string<V: Visitor<'v>>(self, visitor: V) -> Result<V::Value, Error> {
        self.string(visitor)
    }

    fn deserialize_identifier<V: Visitor<'v>>(self, visitor: V) -> Result<V::Value, Error> {
        self.string(visitor)
    }

    fn deserialize_bytes<V: Visitor<'v>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.value {
            Value::Sequence(_) => self.sequence(visitor),
            _ => self.string(visitor),
        }
    }

    fn deserialize_byte_buf<V: Visitor<'v>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_bytes(visitor)
    }

    fn deserialize_option<V: Visitor<'v>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.value {
            Value::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_unit<V: Visitor<'v>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.value {
            Value::Null => visitor.visit_unit(),
            _ => Err(self.invalid(&visitor)),
        }
    }

    fn deserialize_unit_struct<V: Visitor<'v>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_unit(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'v>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'v>>(self, visitor: V) -> Result<V::Value, Error> {
        self.sequence(visitor)
    }

    fn deserialize_tuple<V: Visitor<'v>>(self, _len: usize, visitor: V) -> Result<V::Value, Error> {
        self.sequence(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'v>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.sequence(visitor)
    }

    fn deserialize_map<V: Visitor<'v>>(self, visitor: V) -> Result<V::Value, Error> {
        self.mapping(visitor)
    }

    fn deserialize_struct<V: Visitor<'v>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.mapping(visitor)
    }

    /// Only unit variants, written as a string (no Kubernetes type has other enums).
    fn deserialize_enum<V: Visitor<'v>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        match self.value {
            Value::String(s) => {
                let variant: StrDeserializer<'_, Error> = s.as_str().into_deserializer();
                visitor.visit_enum(variant)
            }
            _ => Err(self.invalid(&visitor)),
        }
    }

    /// A value the type has no field for: noted, then skipped.
    fn deserialize_ignored_any<V: Visitor<'v>>(self, visitor: V) -> Result<V::Value, Error> {
        self.unknown.borrow_mut().push(self.path.clone());
        visitor.visit_unit()
    }

    serde::forward_to_deserialize_any! { <W: Visitor<'v>> i8 i16 i32 i128 u8 u16 u32 u128 f32 char }
}

/// The items of a sequence, each at its index.
struct Items<'v, 'u, I> {
    items: I,
    parent: Tracked<'v, 'u>,
}

impl<'v, I> SeqAccess<'v> for Items<'v, '_, I>
where
    I: Iterator<Item = (usize, &'v Value)> + ExactSizeIterator,
{
    type Error = Error;

    fn next_element_seed<S: DeserializeSeed<'v>>(
        &mut self,
        seed: S,
    ) -> Result<Option<S::Value>, Error> {
        let Some((index, value)) = self.items.next() else {
            return Ok(None);
        };
        let path = self.parent.path.index(index);
        let item = Tracked {
            value,
            path: &path,
            unknown: self.parent.unknown,
        };
        seed.deserialize(item).map(Some).map_err(|e| e.at(&path))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.items.len())
    }
}

/// The entries of a mapping; each value sits at its key.
struct Entries<'v, 'u, I> {
    entries: I,
    value: Option<(Path, &'v Value)>,
    parent: Tracked<'v, 'u>,
}

impl<'v, I> MapAccess<'v> for Entries<'v, '_, I>
where
    I: Iterator<Item = (&'v Value, &'v Value)> + ExactSizeIterator,
{
    type Error = Error;

    fn next_key_seed<S: DeserializeSeed<'v>>(
        &mut self,
        seed: S,
    ) -> Result<Option<S::Value>, Error> {
        let Some((key, value)) = self.entries.next() else {
            return Ok(None);
        };
        let path = self.parent.path.key(&key_text(key));
        let at = Tracked {
            value: key,
            path: &path,
            unknown: self.parent.unknown,
        };
        let decoded = seed.deserialize(at).map_err(|e| e.at(&path))?;
        self.value = Some((path, value));
        Ok(Some(decoded))
    }

    fn next_value_seed<S: DeserializeSeed<'v>>(&mut self, seed: S) -> Result<S::Value, Error> {
        let (path, value) = self.value.take().ok_or_else(|| {
            <Error as de::Error>::custom("a map value was asked for before its key")
        })?;
        let at = Tracked {
            value,
            path: &path,
            unknown: self.parent.unknown,
        };
        seed.deserialize(at).map_err(|e| e.at(&path))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.entries.len())
    }
}

/// A key as a path segment: its text, or for a key that is not a string, its YAML.
fn key_text(key: &Value) -> String {
    match key {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Null => "null".to_owned(),
        other => serde_norway::to_string(other)
            .map(|s| s.trim_end().to_owned())
            .unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[derive(Debug, serde::Deserialize, PartialEq)]
    #[serde(rename_all = "camelCase")]
    struct Spec {
        replicas: Option<i32>,
        #[serde(default)]
        containers: Vec<Container>,
        labels: Option<BTreeMap<String, String>>,
    }

    #[derive(Debug, serde::Deserialize, PartialEq)]
    struct Container {
        name: String,
    }

    fn decode(yaml: &str) -> (Result<Spec, (Path, String)>, Vec<String>) {
        let value: Value = serde_norway::from_str(yaml).unwrap();
        let mut unknown = Vec::new();
        let result = typed::<Spec>(&value, &mut unknown);
        (result, unknown.iter().map(Path::to_string).collect())
    }

    #[test]
    fn unknown_fields_are_collected_at_their_paths() {
        let (spec, unknown) =
            decode("replicas: 2\nreplica: 3\ncontainers:\n- name: a\n- name: b\n  imag: x\n");
        let spec = spec.unwrap();
        assert_eq!(spec.replicas, Some(2));
        assert_eq!(spec.containers.len(), 2);
        assert_eq!(unknown, ["replica", "containers[1].imag"]);
    }

    #[test]
    fn a_wrong_type_is_reported_at_the_deepest_field() {
        let (spec, _) = decode("containers:\n- name: a\n- name: [1]\n");
        let (path, message) = spec.unwrap_err();
        assert_eq!(path.to_string(), "containers[1].name");
        assert_eq!(message, "invalid type: sequence, expected a string");

        let (spec, _) = decode("replicas: three\n");
        let (path, message) = spec.unwrap_err();
        assert_eq!(path.to_string(), "replicas");
        assert_eq!(message, "invalid type: string \"three\", expected i32");

        let (spec, _) = decode("labels:\n  app: 1\n");
        assert_eq!(spec.unwrap_err().0.to_string(), "labels.app");
    }

    #[test]
    fn null_is_an_empty_list_and_no_optional_value() {
        let (spec, unknown) = decode("replicas:\ncontainers:\nlabels:\n");
        assert_eq!(
            spec.unwrap(),
            Spec {
                replicas: None,
                containers: vec![],
                labels: None
            }
        );
        assert!(unknown.is_empty());
    }
}
