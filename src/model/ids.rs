//! Typed ids: a talent's and a ticket's, so that a call taking both cannot
//! have them swapped.

use std::fmt;

/// Defines a string id type: made from text, read as text, shown as text.
macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            pub fn new(id: impl Into<String>) -> $name {
                $name(id.into())
            }

            pub(crate) fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
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
    fn ids_show_as_their_text() {
        let talent = TalentId::new("vill-00001");
        assert_eq!(talent.to_string(), "vill-00001");
        assert_eq!(talent.as_str(), "vill-00001");
        assert_eq!(TicketId::new(String::from("tk-1")).as_str(), "tk-1");
    }
}
