//! A minimal XML tree for AWS Query API responses.

use quick_xml::Reader;
use quick_xml::events::Event;

/// An element with its text and children.
#[derive(Debug, Default)]
pub(crate) struct Element {
    pub(crate) name: String,
    pub(crate) text: String,
    pub(crate) children: Vec<Element>,
}

impl Element {
    /// Finds the first descendant with this name (depth first).
    pub(crate) fn find(&self, name: &str) -> Option<&Element> {
        for child in &self.children {
            if child.name == name {
                return Some(child);
            }
            if let Some(found) = child.find(name) {
                return Some(found);
            }
        }
        None
    }

    /// Returns the text of the first descendant with this name.
    pub(crate) fn text_of(&self, name: &str) -> Option<&str> {
        self.find(name).map(|e| e.text.as_str())
    }

    /// Returns the children with this name.
    pub(crate) fn children_named<'a>(
        &'a self,
        name: &'a str,
    ) -> impl Iterator<Item = &'a Element> + 'a {
        self.children.iter().filter(move |c| c.name == name)
    }
}

/// Parses a document into its root element.
pub(crate) fn parse(body: &[u8]) -> Result<Element, String> {
    let mut reader = Reader::from_reader(body);
    let mut stack: Vec<Element> = vec![Element::default()];
    let mut buf = Vec::new();
    loop {
        match reader
            .read_event_into(&mut buf)
            .map_err(|e| e.to_string())?
        {
            Event::Start(start) => stack.push(Element {
                name: String::from_utf8_lossy(start.local_name().as_ref()).into_owned(),
                ..Element::default()
            }),
            Event::End(_) => {
                let mut element = stack.pop().ok_or("unbalanced end tag")?;
                element.text = element.text.trim().to_owned();
                stack
                    .last_mut()
                    .ok_or("unbalanced end tag")?
                    .children
                    .push(element);
            }
            Event::Empty(start) => {
                let element = Element {
                    name: String::from_utf8_lossy(start.local_name().as_ref()).into_owned(),
                    ..Element::default()
                };
                stack
                    .last_mut()
                    .ok_or("unbalanced tag")?
                    .children
                    .push(element);
            }
            Event::Text(text) => {
                let text = text.decode().map_err(|e| e.to_string())?;
                if let Some(current) = stack.last_mut() {
                    current.text.push_str(&text);
                }
            }
            Event::GeneralRef(reference) => {
                let name = reference.decode().map_err(|e| e.to_string())?;
                let raw = format!("&{name};");
                let resolved = quick_xml::escape::unescape(&raw).map_err(|e| e.to_string())?;
                if let Some(current) = stack.last_mut() {
                    current.text.push_str(&resolved);
                }
            }
            Event::CData(data) => {
                if let Some(current) = stack.last_mut() {
                    current.text.push_str(&String::from_utf8_lossy(&data));
                }
            }
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    if stack.len() != 1 {
        return Err("unclosed element".to_owned());
    }
    stack.pop().ok_or_else(|| "empty document".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_members_parsed() {
        let body = br#"<ListAccessKeysResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/"><ListAccessKeysResult><AccessKeyMetadata><member><AccessKeyId>A1</AccessKeyId><Status>Active</Status></member><member><AccessKeyId>A2</AccessKeyId><Status>Inactive</Status></member></AccessKeyMetadata></ListAccessKeysResult></ListAccessKeysResponse>"#;
        let root = parse(body).unwrap();
        let list = root.find("AccessKeyMetadata").unwrap();
        let ids: Vec<&str> = list
            .children_named("member")
            .filter_map(|m| m.text_of("AccessKeyId"))
            .collect();
        assert_eq!(ids, ["A1", "A2"]);
    }

    #[test]
    fn entities_unescaped() {
        let root = parse(b"<E><Message>a &amp; b &lt;c&gt;</Message></E>").unwrap();
        assert_eq!(root.text_of("Message"), Some("a & b <c>"));
    }
}
