//! What a user's name and email may be. Both are trimmed; the limits are stated in the docs and
//! in the OpenAPI document.

/// Longest name, in characters.
pub const NAME_MAX_CHARS: usize = 100;
/// Longest email address, in bytes (RFC 5321's path limit).
pub const EMAIL_MAX_LEN: usize = 254;
/// Longest local part (before the `@`), in bytes.
pub const EMAIL_LOCAL_MAX_LEN: usize = 64;

/// A trimmed name of 1 to 100 characters with no control characters. Anything else a person's
/// name may contain (apostrophes, quotes, semicolons, any script) is kept as given.
pub fn name(raw: &str) -> Result<String, String> {
    // The limit applies to the name as sent, surrounding spaces included: that is what
    // /openapi.json's maxLength describes, and what a client can check before sending.
    let sent = raw.chars().count();
    if sent > NAME_MAX_CHARS {
        return Err(format!(
            "name is {sent} characters long as sent; at most {NAME_MAX_CHARS} are allowed"
        ));
    }
    let name = raw.trim();
    if name.is_empty() {
        return Err("name must not be empty".into());
    }
    if name.chars().any(char::is_control) {
        return Err("name must not contain control characters".into());
    }
    Ok(name.to_owned())
}

/// A trimmed, plain `local@domain` address: a local part of printable ASCII without spaces,
/// quotes, brackets, commas, semicolons or backslashes, and a domain of at least two labels of
/// letters, digits and inner hyphens.
pub fn email(raw: &str) -> Result<String, String> {
    // As for names, the limit is on the address as sent.
    if raw.len() > EMAIL_MAX_LEN {
        return Err(format!(
            "email is {} bytes long as sent; at most {EMAIL_MAX_LEN} are allowed",
            raw.len()
        ));
    }
    let email = raw.trim();
    if email.is_empty() {
        return Err("email must not be empty".into());
    }
    if email.len() > EMAIL_MAX_LEN {
        return Err(format!(
            "email is {} bytes long; at most {EMAIL_MAX_LEN} are allowed",
            email.len()
        ));
    }
    let Some((local, domain)) = email.split_once('@') else {
        return Err("email must contain an @".into());
    };
    if domain.contains('@') {
        return Err("email must contain exactly one @".into());
    }
    if local.is_empty() || local.len() > EMAIL_LOCAL_MAX_LEN {
        return Err(format!(
            "the part of the email before the @ must be 1 to {EMAIL_LOCAL_MAX_LEN} bytes"
        ));
    }
    let local_ok = local.bytes().all(|b| {
        b.is_ascii_graphic()
            && !matches!(
                b,
                b'"' | b'(' | b')' | b',' | b':' | b';' | b'<' | b'>' | b'[' | b'\\' | b']'
            )
    });
    if !local_ok || local.starts_with('.') || local.ends_with('.') || local.contains("..") {
        return Err(
            "the part of the email before the @ may only hold letters, digits and \
             !#$%&'*+-/=?^_`{|}~. (no spaces, quotes or leading, trailing or double dots)"
                .into(),
        );
    }
    let labels: Vec<&str> = domain.split('.').collect();
    if labels.len() < 2 {
        return Err("the email's domain must contain a dot, e.g. example.com".into());
    }
    for label in labels {
        let label_ok = !label.is_empty()
            && label.len() <= 63
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-');
        if !label_ok {
            return Err(
                "the email's domain must be labels of letters, digits and inner hyphens \
                 separated by dots"
                    .into(),
            );
        }
    }
    Ok(email.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_and_kept_as_given() {
        assert_eq!(name("  Alice ").unwrap(), "Alice");
        assert_eq!(
            name("O'Brien; DROP TABLE users;--").unwrap(),
            "O'Brien; DROP TABLE users;--"
        );
        assert_eq!(name("Zoë Ångström 李").unwrap(), "Zoë Ångström 李");
        assert_eq!(name(&"é".repeat(100)).unwrap().chars().count(), 100);
    }

    #[test]
    fn bad_names_are_refused() {
        assert!(name("").is_err());
        assert!(name("   ").is_err());
        assert!(name(&"x".repeat(101)).is_err());
        // The limit is on the name as sent: spaces that trimming would remove count.
        assert!(name(&format!(" {} ", "x".repeat(99))).is_err());
        assert!(name(&format!(" {}", "x".repeat(99))).is_ok());
        assert!(name("a\u{0}b").is_err());
        assert!(name("line\nbreak").is_err());
    }

    #[test]
    fn plain_addresses_pass() {
        for ok in [
            "alice@example.com",
            "bob.smith+tag@mail.example.co.uk",
            "x_y-z@a-b.io",
            " carol@example.com ",
        ] {
            assert!(email(ok).is_ok(), "{ok}");
        }
        assert_eq!(email(" carol@example.com ").unwrap(), "carol@example.com");
    }

    #[test]
    fn bad_addresses_are_refused() {
        for bad in [
            "",
            "alice",
            "alice@",
            "@example.com",
            "alice@@example.com",
            "a@b@example.com",
            "alice@localhost",
            "alice@example..com",
            "alice@-example.com",
            "alice@exa_mple.com",
            "al ice@example.com",
            ".alice@example.com",
            "al..ice@example.com",
            "x'; DROP TABLE users; --@example.com",
            "\"quoted\"@example.com",
            "alice@example.com\u{0}",
            "ålice@example.com",
        ] {
            assert!(email(bad).is_err(), "{bad:?}");
        }
        let long_local = format!("{}@example.com", "a".repeat(65));
        assert!(email(&long_local).is_err());
        let long = format!("a@{}.com", "b".repeat(250));
        assert!(email(&long).is_err());
    }
}
