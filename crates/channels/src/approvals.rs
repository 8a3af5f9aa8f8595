//! Approval buttons: what a button under an approval request carries, and the check of a
//! press. The data is `a:ID:CHOICE:TAG`, where TAG is an HMAC-SHA256 (truncated to 64
//! bits) of the approval id and the choice under a key made at start-up, so a press with
//! data the bot did not write (another id, another choice, a guessed tag) is refused. The
//! bot also remembers which message it put each approval's buttons on, so buttons copied
//! onto another message are refused, and the store's answer is atomic, so a second press
//! (or a replay) of a settled request is refused as already answered.
//!
//! Does not: decide who may press (the inbound [`crate::Gate`] lets only approvers and
//! owners through) or answer the request (the caller does, through the one function that
//! answers approvals for every front).

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::service::Button;

/// What a button answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Choice {
    /// Approve this once.
    Once,
    Deny,
}

impl Choice {
    fn code(self) -> &'static str {
        match self {
            Choice::Once => "o",
            Choice::Deny => "d",
        }
    }
}

/// Signs and checks approval buttons.
pub struct ButtonKey {
    key: [u8; 32],
}

/// Why a press was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PressError {
    #[error("the button data is not an approval button's")]
    NotAnApprovalButton,
    #[error("the button's signature does not match (forged or from an earlier run)")]
    BadTag,
}

impl ButtonKey {
    /// A fresh random key (buttons of an earlier run stop working: their requests are
    /// answered from the CLI or web instead).
    pub fn generate() -> Result<ButtonKey, getrandom::Error> {
        let mut key = [0u8; 32];
        getrandom::fill(&mut key)?;
        Ok(ButtonKey { key })
    }

    fn tag(&self, id: &str, choice: Choice) -> String {
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(&self.key).expect("HMAC takes any key length");
        mac.update(id.as_bytes());
        mac.update(b":");
        mac.update(choice.code().as_bytes());
        hex::encode(&mac.finalize().into_bytes()[..8])
    }

    /// The two buttons under approval request `id`.
    pub fn buttons(&self, id: &str) -> Vec<Button> {
        [(Choice::Once, "Approve once"), (Choice::Deny, "Deny")]
            .into_iter()
            .map(|(c, label)| Button {
                label: label.into(),
                data: format!("a:{id}:{}:{}", c.code(), self.tag(id, c)),
            })
            .collect()
    }

    /// The approval id and choice of a press, if the bot wrote this data.
    pub fn check(&self, data: &str) -> Result<(String, Choice), PressError> {
        let mut parts = data.split(':');
        let (Some("a"), Some(id), Some(choice), Some(tag), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(PressError::NotAnApprovalButton);
        };
        let choice = match choice {
            "o" => Choice::Once,
            "d" => Choice::Deny,
            _ => return Err(PressError::NotAnApprovalButton),
        };
        let expected = self.tag(id, choice);
        if expected.as_bytes().ct_eq(tag.as_bytes()).into() {
            Ok((id.to_string(), choice))
        } else {
            Err(PressError::BadTag)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_data_the_bot_wrote_is_accepted() {
        let key = ButtonKey::generate().unwrap();
        let buttons = key.buttons("01J0ABCDEF");
        assert!(buttons.iter().all(|b| b.data.len() <= 64), "Telegram's cap");
        assert_eq!(
            key.check(&buttons[0].data).unwrap(),
            ("01J0ABCDEF".into(), Choice::Once)
        );
        assert_eq!(key.check(&buttons[1].data).unwrap().1, Choice::Deny);
        // Another approval's id with this tag, a flipped choice, a guessed tag.
        let forged_id = buttons[0].data.replace("01J0ABCDEF", "01J0ZZZZZZ");
        let flipped = buttons[1].data.replace(":d:", ":o:");
        assert_eq!(key.check(&forged_id), Err(PressError::BadTag));
        assert_eq!(key.check(&flipped), Err(PressError::BadTag));
        assert_eq!(
            key.check("a:01J0ABCDEF:o:0000000000000000"),
            Err(PressError::BadTag)
        );
        assert_eq!(key.check("approve"), Err(PressError::NotAnApprovalButton));
        // Another run's key does not accept this run's buttons.
        let other = ButtonKey::generate().unwrap();
        assert_eq!(other.check(&buttons[0].data), Err(PressError::BadTag));
    }
}
