//! Typed ids: a talent's and a ticket's, so that a call taking both cannot
//! have them swapped.

use std::fmt;

/// Defines a string id type with the conversions every id needs.
macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            pub fn new(id: impl Into<String>) -> $name {
                $name(id.into())
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }

            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<String> for $name {
            fn from(id: String) -> $name {
                $name(id)
            }
        }

        impl From<&str> for $name {
            fn from(id: &str) -> $name {
                $name(id.to_string())
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }
    };
}

string_id!(
    /// A talent's id in the roster (`vill-00001`).
    TalentId
);

string_id!(
    /// A ticket's id (`tk-…`).
    TicketId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_show_and_compare_as_their_text() {
        let talent = TalentId::new("vill-00001");
        assert_eq!(talent.to_string(), "vill-00001");
        assert_eq!(talent.as_str(), "vill-00001");
        assert!(talent == *"vill-00001");
        assert_eq!(TicketId::from("tk-1").into_string(), "tk-1");
    }
}
