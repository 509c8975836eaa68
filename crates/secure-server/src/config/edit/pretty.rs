//! Writing JSON as `serde_json::to_string_pretty` does, but with every object's keys in the
//! order a file had them ([`Shape`]), new keys last, so that an edit changes only what it
//! changes (without serde_json's `preserve_order`, which would change key order for every
//! crate of the workspace).

use serde::Deserialize;
use serde_json::Value;

/// The key order of a JSON text: every object's keys as they were written, and the same for
/// the values inside.
#[derive(Debug, Default, PartialEq)]
pub(super) enum Shape {
    /// An object's keys in their order, each with its value's shape.
    Object(Vec<(String, Shape)>),
    /// An array's items' shapes.
    Array(Vec<Shape>),
    /// Anything else.
    #[default]
    Other,
}

impl<'de> Deserialize<'de> for Shape {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Shape, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Shape;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Shape, A::Error> {
                let mut keys: Vec<(String, Shape)> = Vec::new();
                while let Some((key, shape)) = map.next_entry::<String, Shape>()? {
                    // A repeated key: the value is the last one, the place the first one.
                    match keys.iter_mut().find(|(k, _)| *k == key) {
                        Some(entry) => entry.1 = shape,
                        None => keys.push((key, shape)),
                    }
                }
                Ok(Shape::Object(keys))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Shape, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element::<Shape>()? {
                    items.push(item);
                }
                Ok(Shape::Array(items))
            }
            fn visit_bool<E>(self, _: bool) -> Result<Shape, E> {
                Ok(Shape::Other)
            }
            fn visit_i64<E>(self, _: i64) -> Result<Shape, E> {
                Ok(Shape::Other)
            }
            fn visit_u64<E>(self, _: u64) -> Result<Shape, E> {
                Ok(Shape::Other)
            }
            fn visit_f64<E>(self, _: f64) -> Result<Shape, E> {
                Ok(Shape::Other)
            }
            fn visit_str<E>(self, _: &str) -> Result<Shape, E> {
                Ok(Shape::Other)
            }
            fn visit_unit<E>(self) -> Result<Shape, E> {
                Ok(Shape::Other)
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// Appends `value` as pretty JSON (two-space indents, as `serde_json::to_string_pretty`), each
/// object's keys in the order of `shape` first and any others after them.
pub(super) fn write_pretty(out: &mut String, value: &Value, shape: Option<&Shape>, indent: usize) {
    let pad = |out: &mut String, n: usize| out.extend(std::iter::repeat_n(' ', n));
    match value {
        Value::Object(map) if !map.is_empty() => {
            let known: &[(String, Shape)] = match shape {
                Some(Shape::Object(keys)) => keys,
                _ => &[],
            };
            let ordered = known
                .iter()
                .filter_map(|(key, shape)| Some((key, map.get(key)?, Some(shape))))
                .chain(
                    map.iter()
                        .filter(|(key, _)| !known.iter().any(|(k, _)| k == *key))
                        .map(|(key, value)| (key, value, None)),
                );
            out.push('{');
            for (i, (key, value, shape)) in ordered.enumerate() {
                out.push_str(if i == 0 { "\n" } else { ",\n" });
                pad(out, indent + 2);
                out.push_str(&Value::from(key.as_str()).to_string());
                out.push_str(": ");
                write_pretty(out, value, shape, indent + 2);
            }
            out.push('\n');
            pad(out, indent);
            out.push('}');
        }
        Value::Array(items) if !items.is_empty() => {
            let shapes: &[Shape] = match shape {
                Some(Shape::Array(items)) => items,
                _ => &[],
            };
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                out.push_str(if i == 0 { "\n" } else { ",\n" });
                pad(out, indent + 2);
                write_pretty(out, item, shapes.get(i), indent + 2);
            }
            out.push('\n');
            pad(out, indent);
            out.push(']');
        }
        // Leaves, `{}` and `[]`: as serde_json writes them.
        other => out.push_str(&other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::config::edit::fixtures::keys_in;

    /// The file is written as serde_json's pretty printer would, but for the order of keys.
    #[test]
    fn pretty_printing_matches_serde_json() {
        let value = json!({
            "a": [], "b": {}, "c": [1, {"x": null, "y": [true, 2.5]}], "d": "q\"\u{1}é\n",
            "e": {"f": {"g": -1}}, "h\"": u64::MAX
        });
        let mut text = String::new();
        write_pretty(&mut text, &value, None, 0);
        assert_eq!(text, serde_json::to_string_pretty(&value).unwrap());

        let original =
            r#"{"z": 1, "limits": {"b": 1, "a": 2}, "list": [{"y": 1, "x": 2}], "m": 3}"#;
        let shape = serde_json::from_str::<Shape>(original).unwrap();
        let mut value: Value = serde_json::from_str(original).unwrap();
        value["new"] = json!(0);
        value.as_object_mut().unwrap().remove("m");
        let mut text = String::new();
        write_pretty(&mut text, &value, Some(&shape), 0);
        assert_eq!(keys_in(&text, &[]), ["z", "limits", "list", "new"]);
        assert_eq!(keys_in(&text, &["limits"]), ["b", "a"]);
        assert!(text.contains("\"y\": 1,\n      \"x\": 2"), "{text}");
        assert_eq!(serde_json::from_str::<Value>(&text).unwrap(), value);
    }
}
