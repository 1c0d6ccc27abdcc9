//! HTTP conditional requests evaluated against an object, with S3's precedence rules.
//!
//! For GET/HEAD (RFC 9110 §13.2.2 as S3 applies it): `If-Match` is evaluated first (a mismatch
//! is 412) and, when present and true, `If-Unmodified-Since` is ignored; then `If-None-Match`
//! (a match is 304) and, when present, `If-Modified-Since` is ignored. For copy sources
//! (`x-amz-copy-source-if-*`) every failed condition is 412.

/// Parsed request conditions. ETags are unquoted; `*` matches any existing object.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Conditions {
    pub if_match: Option<Vec<String>>,
    pub if_none_match: Option<Vec<String>>,
    /// Epoch seconds.
    pub if_modified_since: Option<i64>,
    pub if_unmodified_since: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Proceed,
    NotModified,
    PreconditionFailed,
}

fn matches(list: &[String], etag: &str) -> bool {
    list.iter().any(|t| t == "*" || t == etag)
}

impl Conditions {
    pub fn is_empty(&self) -> bool {
        *self == Conditions::default()
    }

    /// Evaluates for a read of an object with `etag` modified at `last_modified_ms`.
    pub fn evaluate(&self, etag: &str, last_modified_ms: i64) -> Outcome {
        let modified = last_modified_ms.div_euclid(1000);
        match &self.if_match {
            Some(list) if !matches(list, etag) => return Outcome::PreconditionFailed,
            Some(_) => {}
            None => {
                if self.if_unmodified_since.is_some_and(|t| modified > t) {
                    return Outcome::PreconditionFailed;
                }
            }
        }
        match &self.if_none_match {
            Some(list) if matches(list, etag) => return Outcome::NotModified,
            Some(_) => {}
            None => {
                if self.if_modified_since.is_some_and(|t| modified <= t) {
                    return Outcome::NotModified;
                }
            }
        }
        Outcome::Proceed
    }

    /// Evaluates copy-source conditions: any failure is a failed precondition.
    pub fn evaluate_copy_source(&self, etag: &str, last_modified_ms: i64) -> Outcome {
        match self.evaluate(etag, last_modified_ms) {
            Outcome::NotModified => Outcome::PreconditionFailed,
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c() -> Conditions {
        Conditions::default()
    }

    #[test]
    fn precedence() {
        let t = 1_000_000i64; // seconds
        let ms = t * 1000 + 500;
        let list = |v: &str| Some(vec![v.to_string()]);
        assert_eq!(c().evaluate("e", ms), Outcome::Proceed);
        assert_eq!(
            Conditions {
                if_match: list("e"),
                ..c()
            }
            .evaluate("e", ms),
            Outcome::Proceed
        );
        assert_eq!(
            Conditions {
                if_match: list("*"),
                ..c()
            }
            .evaluate("e", ms),
            Outcome::Proceed
        );
        assert_eq!(
            Conditions {
                if_match: list("x"),
                ..c()
            }
            .evaluate("e", ms),
            Outcome::PreconditionFailed
        );
        // If-Match true wins over a failing If-Unmodified-Since.
        assert_eq!(
            Conditions {
                if_match: list("e"),
                if_unmodified_since: Some(t - 10),
                ..c()
            }
            .evaluate("e", ms),
            Outcome::Proceed
        );
        assert_eq!(
            Conditions {
                if_unmodified_since: Some(t - 10),
                ..c()
            }
            .evaluate("e", ms),
            Outcome::PreconditionFailed
        );
        assert_eq!(
            Conditions {
                if_unmodified_since: Some(t),
                ..c()
            }
            .evaluate("e", ms),
            Outcome::Proceed
        );
        assert_eq!(
            Conditions {
                if_none_match: list("e"),
                ..c()
            }
            .evaluate("e", ms),
            Outcome::NotModified
        );
        // If-None-Match false wins over a true If-Modified-Since... (304 only from If-None-Match).
        assert_eq!(
            Conditions {
                if_none_match: list("x"),
                if_modified_since: Some(t + 10),
                ..c()
            }
            .evaluate("e", ms),
            Outcome::Proceed
        );
        assert_eq!(
            Conditions {
                if_modified_since: Some(t),
                ..c()
            }
            .evaluate("e", ms),
            Outcome::NotModified
        );
        assert_eq!(
            Conditions {
                if_modified_since: Some(t - 1),
                ..c()
            }
            .evaluate("e", ms),
            Outcome::Proceed
        );
        assert_eq!(
            Conditions {
                if_none_match: list("e"),
                ..c()
            }
            .evaluate_copy_source("e", ms),
            Outcome::PreconditionFailed
        );
    }
}
