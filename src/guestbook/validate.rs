//! Input rules shared by the page and the JSON API.

pub const NAME_MAX_CHARS: usize = 50;
pub const MESSAGE_MAX_CHARS: usize = 500;
/// Largest request body accepted (form or JSON); larger bodies get 413.
pub const BODY_LIMIT_BYTES: usize = 16 * 1024;
/// Most messages one `GET /api/messages` returns.
pub const LIST_LIMIT_MAX: u32 = 1000;

/// A message that passed validation: trimmed, stored as typed (escaping happens on output).
#[derive(Debug, Clone)]
pub struct NewMessage {
    pub name: String,
    pub message: String,
}

pub fn new_message(name: &str, message: &str) -> Result<NewMessage, String> {
    let name = name.trim();
    let message = message.trim();
    check_length("name", name, NAME_MAX_CHARS)?;
    check_length("message", message, MESSAGE_MAX_CHARS)?;
    if name.chars().any(char::is_control) {
        return Err("name must not contain control characters".into());
    }
    // Line breaks and tabs are text in a message; other control characters are not.
    if message
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
    {
        return Err("message must not contain control characters".into());
    }
    Ok(NewMessage {
        name: name.to_owned(),
        message: message.to_owned(),
    })
}

/// Whether a form body (`application/x-www-form-urlencoded`) is UTF-8 once percent-decoded.
/// `&`, `=` and `+` are ASCII, so decoding the whole body at once checks every name and value.
pub fn form_is_utf8(body: &[u8]) -> bool {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut decoded = Vec::with_capacity(body.len());
    let mut i = 0;
    while i < body.len() {
        let escaped = match body[i..] {
            [b'%', high, low, ..] => hex(high).zip(hex(low)).map(|(h, l)| h << 4 | l),
            _ => None,
        };
        match escaped {
            Some(byte) => {
                decoded.push(byte);
                i += 3;
            }
            None => {
                decoded.push(body[i]);
                i += 1;
            }
        }
    }
    std::str::from_utf8(&decoded).is_ok()
}

fn check_length(field: &str, value: &str, max: usize) -> Result<(), String> {
    let chars = value.chars().count();
    if chars == 0 {
        return Err(format!("{field} must not be empty"));
    }
    if chars > max {
        return Err(format!(
            "{field} must be at most {max} characters (got {chars})"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trims_and_keeps_markup_as_typed() {
        let m = new_message("  Ann ", " <b>hi</b> & \"you\" ").unwrap();
        assert_eq!(m.name, "Ann");
        assert_eq!(m.message, "<b>hi</b> & \"you\"");
    }

    #[test]
    fn forms_must_be_utf8_once_decoded() {
        for good in [
            &b"name=a&message=b"[..],
            b"name=%C3%A9&message=caf%c3%a9+ok",
            b"name=100%&message=%zz%",
            "name=\u{e9}&message=x".as_bytes(),
            b"",
        ] {
            assert!(form_is_utf8(good), "{}", String::from_utf8_lossy(good));
        }
        for bad in [
            &b"name=%FF&message=b"[..],
            b"name=a&message=%C3",
            b"name=%C3&%A9=x",
            b"name=\xff&message=b",
            b"message=%ED%A0%80",
        ] {
            assert!(!form_is_utf8(bad), "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn rejects_empty_long_and_control() {
        assert!(new_message("   ", "x").is_err());
        assert!(new_message("a", "").is_err());
        assert!(new_message(&"n".repeat(51), "x").is_err());
        assert!(new_message("n", &"é".repeat(501)).is_err());
        assert!(new_message("n", &"é".repeat(500)).is_ok());
        assert!(new_message("a\u{7}", "x").is_err());
        assert!(new_message("a", "x\u{0}y").is_err());
        assert!(new_message("a", "line one\nline two").is_ok());
        assert!(new_message("a\nb", "x").is_err());
    }
}
