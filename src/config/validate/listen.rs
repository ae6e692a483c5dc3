//! The `listen` key: an array of socket addresses, each shared by every instance.

use std::ops::Range;

use toml::de::DeValue;

use super::{Value, Walker};
use crate::config::listen::{self, Listen, LISTEN_EXPECTED, MAX_LISTEN};

/// A `listen` array and where it was written, so an address claimed by two apps is
/// reported at the layer that named it.
#[derive(Debug, Clone)]
pub(super) struct ListenSetting {
    /// `None` when invalid (already reported).
    pub value: Option<Vec<Listen>>,
    pub span: Range<usize>,
    pub key: String,
}

impl Walker<'_> {
    pub(super) fn listen(&mut self, value: &Value<'_>, key: &str) -> ListenSetting {
        let mut setting = ListenSetting {
            value: None,
            span: value.span(),
            key: key.to_string(),
        };
        let expected = format!("an array of addresses, each {LISTEN_EXPECTED}");
        let DeValue::Array(items) = value.get_ref() else {
            self.sink.wrong_type(value, key, "listen", &expected);
            return setting;
        };
        if items.len() > MAX_LISTEN {
            self.sink.error(
                value.span(),
                Some(key),
                format!(
                    "`listen` has {} addresses, at most {MAX_LISTEN}",
                    items.len()
                ),
                None,
            );
            return setting;
        }
        let mut all = Vec::with_capacity(items.len());
        let mut ok = true;
        for item in items.iter() {
            let Some(text) = self.string(item, key, "listen", LISTEN_EXPECTED) else {
                ok = false;
                continue;
            };
            match listen::parse(text) {
                Ok(l) if all.contains(&l) => {
                    ok = false;
                    self.sink.error(
                        item.span(),
                        Some(key),
                        format!("`{text}` is listed twice"),
                        None,
                    );
                }
                Ok(l) => all.push(l),
                Err(message) => {
                    ok = false;
                    self.sink.error(
                        item.span(),
                        Some(key),
                        format!("invalid `listen` address: {message}"),
                        Some(LISTEN_EXPECTED),
                    );
                }
            }
        }
        if ok {
            setting.value = Some(all);
        }
        setting
    }

    /// A socket is shared by the instances of one app, never by two apps.
    pub(super) fn check_listen(&mut self, claims: &[(Listen, String, Range<usize>, String)]) {
        let mut seen: std::collections::BTreeMap<&Listen, &str> = Default::default();
        for (addr, app, span, key) in claims {
            match seen.get(addr) {
                Some(&first) if first != app => self.sink.error(
                    span.clone(),
                    Some(key),
                    format!(
                        "`{addr}` of app `{app}` is already a `listen` address of app `{first}`"
                    ),
                    Some("one app per listening address; its instances share it"),
                ),
                Some(_) => {}
                None => {
                    seen.insert(addr, app);
                }
            }
        }
    }
}
