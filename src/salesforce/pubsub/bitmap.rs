//! The field bitmaps of Pub/Sub change events (`changedFields`, `nulledFields`,
//! `diffFields`): lists like `["0x650004E0", "4-0x10"]` turned back into field names.
//!
//! `0x…` covers the schema's top-level fields: hex digit j counted from the right carries
//! positions 4j to 4j+3 (bit b is position 4j+b). `p-0x…` covers the nested fields of the
//! compound field at top-level position p (`BillingAddress.City`). The digits are walked one
//! by one, so a bitmap longer than any integer type still reads.

/// The fields a schema has, in position order; compound fields carry their own.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldTree {
    pub fields: Vec<(String, Option<Vec<String>>)>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BitmapError {
    #[error("{element:?} is not a field bitmap (0x… or <position>-0x…)")]
    Malformed { element: String },
    #[error(
        "{element:?} names position {position}, but the schema has {fields} fields there: the wrong schema was used"
    )]
    PastSchema {
        element: String,
        position: usize,
        fields: usize,
    },
    #[error("{element:?} names position {position}, which is not a compound field")]
    NotCompound { element: String, position: usize },
}

/// The positions a `0x…` bitmap sets, ascending.
pub fn positions(hex: &str) -> Result<Vec<usize>, BitmapError> {
    let malformed = || BitmapError::Malformed {
        element: hex.to_owned(),
    };
    let digits = hex
        .strip_prefix("0x")
        .or_else(|| hex.strip_prefix("0X"))
        .filter(|d| !d.is_empty())
        .ok_or_else(malformed)?;
    let mut out = Vec::new();
    for (j, c) in digits.chars().rev().enumerate() {
        let value = c.to_digit(16).ok_or_else(malformed)?;
        for bit in 0..4 {
            if value & (1 << bit) != 0 {
                out.push(4 * j + bit);
            }
        }
    }
    Ok(out)
}

/// The names `elements` stand for, top-level fields first, then nested ones, each once. A
/// compound listed with its nested fields is named by those only.
pub fn expand(elements: &[String], tree: &FieldTree) -> Result<Vec<String>, BitmapError> {
    let mut top: Vec<usize> = Vec::new();
    let mut nested: Vec<(usize, Vec<String>)> = Vec::new();
    for element in elements {
        let past = |position: usize, fields: usize| BitmapError::PastSchema {
            element: element.clone(),
            position,
            fields,
        };
        match element.split_once('-') {
            None => {
                for p in positions(element)? {
                    if p >= tree.fields.len() {
                        return Err(past(p, tree.fields.len()));
                    }
                    top.push(p);
                }
            }
            Some((parent, bits)) => {
                let parent: usize = parent.parse().map_err(|_| BitmapError::Malformed {
                    element: element.clone(),
                })?;
                let (name, children) = tree
                    .fields
                    .get(parent)
                    .ok_or_else(|| past(parent, tree.fields.len()))?;
                let children = children.as_ref().ok_or_else(|| BitmapError::NotCompound {
                    element: element.clone(),
                    position: parent,
                })?;
                let mut names = Vec::new();
                for p in positions(bits)? {
                    let child = children.get(p).ok_or_else(|| past(p, children.len()))?;
                    names.push(format!("{name}.{child}"));
                }
                nested.push((parent, names));
            }
        }
    }
    let mut out: Vec<String> = Vec::new();
    for p in top {
        // Position 0 is the header, never a changed field; a compound with nested elements
        // is named by them below.
        if p == 0 || nested.iter().any(|(parent, _)| *parent == p) {
            continue;
        }
        let name = &tree.fields[p].0;
        if !out.contains(name) {
            out.push(name.clone());
        }
    }
    for name in nested.into_iter().flat_map(|(_, names)| names) {
        if !out.contains(&name) {
            out.push(name);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    /// The worked example: a header, Name, Type, Phone, a BillingAddress, Industry and
    /// LastModifiedDate.
    fn account() -> FieldTree {
        let plain = |n: &str| (n.to_string(), None);
        FieldTree {
            fields: vec![
                plain("ChangeEventHeader"),
                plain("Name"),
                plain("Type"),
                plain("Phone"),
                (
                    "BillingAddress".into(),
                    Some(strings(&[
                        "Street",
                        "City",
                        "State",
                        "PostalCode",
                        "Country",
                    ])),
                ),
                plain("Industry"),
                plain("LastModifiedDate"),
            ],
        }
    }

    #[test]
    fn salesforces_documented_bitmaps() {
        assert_eq!(
            positions("0x650004E0").unwrap(),
            vec![5, 6, 7, 10, 24, 26, 29, 30]
        );
        assert_eq!(positions("0x10").unwrap(), vec![4]);
        assert_eq!(positions("0x06").unwrap(), vec![1, 2]);
        assert_eq!(positions("0x06").unwrap(), positions("0X6").unwrap());
    }

    #[test]
    fn a_bitmap_longer_than_any_integer_reads() {
        let hex = format!("0x1{}", "0".repeat(40)); // position 160
        assert_eq!(positions(&hex).unwrap(), vec![160]);
    }

    #[test]
    fn top_level_and_compound_elements_expand_to_names() {
        let names = expand(&strings(&["0x42", "4-0x02"]), &account()).unwrap();
        assert_eq!(
            names,
            strings(&["Name", "LastModifiedDate", "BillingAddress.City"])
        );
        // The compound's own bit with nested elements: named by the nested fields only.
        let names = expand(&strings(&["0x12", "4-0x03"]), &account()).unwrap();
        assert_eq!(
            names,
            strings(&["Name", "BillingAddress.Street", "BillingAddress.City"])
        );
        // Only the compound's bit: the compound itself.
        assert_eq!(
            expand(&strings(&["0x10"]), &account()).unwrap(),
            strings(&["BillingAddress"])
        );
    }

    #[test]
    fn a_list_of_nested_elements_only() {
        let names = expand(&strings(&["4-0x01"]), &account()).unwrap();
        assert_eq!(names, strings(&["BillingAddress.Street"]));
        assert_eq!(expand(&[], &account()).unwrap(), Vec::<String>::new());
    }

    #[test]
    fn positions_past_the_schema_and_bad_elements_are_errors() {
        let e = expand(&strings(&["0x80"]), &account()).unwrap_err();
        assert!(
            matches!(e, BitmapError::PastSchema { position: 7, .. }),
            "{e}"
        );
        let e = expand(&strings(&["4-0x40"]), &account()).unwrap_err();
        assert!(
            matches!(e, BitmapError::PastSchema { position: 6, .. }),
            "{e}"
        );
        let e = expand(&strings(&["9-0x01"]), &account()).unwrap_err();
        assert!(matches!(e, BitmapError::PastSchema { .. }), "{e}");
        let e = expand(&strings(&["1-0x01"]), &account()).unwrap_err();
        assert!(
            matches!(e, BitmapError::NotCompound { position: 1, .. }),
            "{e}"
        );
        for bad in ["", "0x", "42", "0xZZ", "x-0x1", "4-"] {
            assert!(expand(&strings(&[bad]), &account()).is_err(), "{bad}");
        }
    }
}
