//! `{{name}}` templates and the variables they read.

use std::collections::BTreeMap;

use leak_core::Secret;

/// Template variables. Values are kept as [`Secret`] because any of them
/// may be a credential; they are only exposed while rendering a request.
#[derive(Debug, Default, Clone)]
pub(crate) struct Vars {
    values: BTreeMap<String, Secret>,
}

/// Escaping applied to a value written into the rendered text.
#[derive(Clone, Copy)]
pub(crate) enum Escape {
    /// As is (headers, JSON strings that serde escapes later, form values).
    None,
    /// Percent-encoded for a URL.
    Url,
}

impl Vars {
    pub(crate) fn set(&mut self, name: &str, value: impl Into<Vec<u8>>) {
        self.values.insert(name.to_owned(), Secret::new(value));
    }

    pub(crate) fn set_secret(&mut self, name: &str, value: Secret) {
        self.values.insert(name.to_owned(), value);
    }

    pub(crate) fn get(&self, name: &str) -> Option<&Secret> {
        self.values.get(name)
    }

    /// Renders a template; an unknown variable is an error naming it.
    pub(crate) fn render(&self, template: &str, escape: Escape) -> Result<String, String> {
        let mut out = String::new();
        let mut rest = template;
        while let Some(start) = rest.find("{{") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let end = after
                .find("}}")
                .ok_or_else(|| "an opening {{ has no closing }}".to_owned())?;
            let name = after[..end].trim();
            let value = self
                .values
                .get(name)
                .ok_or_else(|| format!("unknown variable {name:?}"))?;
            let text = value
                .expose_str()
                .ok_or_else(|| format!("variable {name:?} is not UTF-8"))?;
            match escape {
                Escape::None => out.push_str(text),
                Escape::Url => out.extend(
                    url::form_urlencoded::byte_serialize(text.as_bytes())
                        .map(|s| s.replace('+', "%20")),
                ),
            }
            rest = &after[end + 2..];
        }
        out.push_str(rest);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_values_percent_encoded() {
        let mut vars = Vars::default();
        vars.set("owner", "a b/c");
        assert_eq!(
            vars.render("http://h/o/{{owner}}/x", Escape::Url).unwrap(),
            "http://h/o/a%20b%2Fc/x"
        );
    }

    #[test]
    fn unknown_variable_named() {
        let error = Vars::default()
            .render("{{missing}}", Escape::None)
            .unwrap_err();
        assert!(error.contains("missing"));
    }
}
