//! The secret filter on what the commands print: every secret a command
//! has read is registered with the receiver's log filter, and answers,
//! records and errors pass through it.

/// `text` with every secret this command has read replaced by
/// `[redacted]`: what it prints of answers and errors.
pub fn redact(text: &str) -> String {
    let redacted = hookwarden_receiver::logging::registry().redact(text.as_bytes());
    String::from_utf8_lossy(&redacted).into_owned()
}

/// From now on [`redact`] hides `secret`.
pub fn register_secret(secret: &[u8]) {
    hookwarden_receiver::logging::register_secret(secret);
}

/// Prints `line` through the secret filter (whatever a destination
/// answered may echo what it was sent).
pub fn print_line(line: String) {
    print_unfiltered(&redact(&line));
}

/// Prints `text` and a newline as it is: for what holds no secret
/// the command has read (records of the receiver's own making).
pub fn print_unfiltered(text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    // A closed pipe (`| head`) ends the output, not with a panic.
    let _ = writeln!(out, "{text}");
    let _ = out.flush();
}
