//! [`Symbol`]: an exchange instrument name that is safe to put in one subject token.

use std::borrow::Borrow;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::str::FromStr;
use std::sync::Arc;

/// The longest symbol accepted, in bytes. Real symbols are under 20; the bound keeps a
/// subject well inside the server's limits and rejects garbage early.
pub const MAX_SYMBOL_LEN: usize = 64;

/// A validated instrument symbol such as `BTCUSDT`, `1000SHIBUSDT`, `BTCUSD_PERP` or
/// `ETHUSDT_250926`.
///
/// A symbol is one NATS subject token, so it is restricted to upper-case ASCII letters,
/// digits, `_` and `-`: no `.` (token separator), no `*` or `>` (wildcards), no
/// whitespace, control or non-ASCII characters. Binance's stream names are lower case;
/// [`Symbol::normalize`] is the explicit door for such input.
///
/// Cloning is cheap (a reference count or a static reference).
///
/// ```
/// use sequex_subjects::Symbol;
///
/// let btc: Symbol = "BTCUSDT".parse()?;
/// assert_eq!(btc.as_str(), "BTCUSDT");
/// assert_eq!(Symbol::normalize("btcusdt")?, btc);
/// assert!("BTC.USDT".parse::<Symbol>().is_err());
/// # Ok::<(), sequex_subjects::SymbolError>(())
/// ```
#[derive(Clone)]
pub struct Symbol(Repr);

#[derive(Clone)]
enum Repr {
    Static(&'static str),
    Shared(Arc<str>),
}

impl Symbol {
    /// Validates `input` as a symbol, exactly as written (upper case).
    ///
    /// ```
    /// use sequex_subjects::Symbol;
    ///
    /// assert!(Symbol::new("ETHUSDT_250926").is_ok());
    /// let err = Symbol::new("btcusdt").unwrap_err();
    /// assert_eq!(err.to_string(), "invalid symbol \"btcusdt\": lower-case 'b' at byte 0 (use Symbol::normalize for exchange stream names)");
    /// ```
    pub fn new(input: &str) -> Result<Self, SymbolError> {
        validate(input.as_bytes(), false).map_err(|kind| SymbolError::new(input, kind))?;
        Ok(Symbol(Repr::Shared(Arc::from(input))))
    }

    /// Validates `input` after upper-casing ASCII letters: the constructor for exchange
    /// stream names (`btcusdt@trade`) and case-insensitive user input.
    ///
    /// ```
    /// use sequex_subjects::Symbol;
    ///
    /// assert_eq!(Symbol::normalize("1000shibusdt")?.as_str(), "1000SHIBUSDT");
    /// # Ok::<(), sequex_subjects::SymbolError>(())
    /// ```
    pub fn normalize(input: &str) -> Result<Self, SymbolError> {
        validate(input.as_bytes(), true).map_err(|kind| SymbolError::new(input, kind))?;
        Ok(Symbol(Repr::Shared(Arc::from(input.to_ascii_uppercase()))))
    }

    /// A symbol from a literal, checked at compile time when used in a `const`.
    ///
    /// # Panics
    ///
    /// Panics if `input` is not a valid symbol; in a `const` context that is a compile error.
    ///
    /// ```
    /// use sequex_subjects::Symbol;
    ///
    /// const BTC: Symbol = Symbol::from_static("BTCUSDT");
    /// assert_eq!(BTC.as_str(), "BTCUSDT");
    /// ```
    ///
    /// ```should_panic
    /// use sequex_subjects::Symbol;
    ///
    /// let _ = Symbol::from_static("BTC.USDT");
    /// ```
    ///
    /// ```compile_fail
    /// use sequex_subjects::Symbol;
    ///
    /// const BAD: Symbol = Symbol::from_static("TRADE.>");
    /// ```
    pub const fn from_static(input: &'static str) -> Self {
        if validate(input.as_bytes(), false).is_err() {
            panic!("invalid static symbol");
        }
        Symbol(Repr::Static(input))
    }

    /// The symbol text.
    ///
    /// ```
    /// # use sequex_subjects::Symbol;
    /// assert_eq!(Symbol::from_static("BTCUSD_PERP").as_str(), "BTCUSD_PERP");
    /// ```
    pub fn as_str(&self) -> &str {
        match &self.0 {
            Repr::Static(s) => s,
            Repr::Shared(s) => s,
        }
    }
}

/// Checks every byte; `fold_case` accepts lower-case letters (they are upper-cased by the
/// caller). A `const fn` so that [`Symbol::from_static`] fails at compile time.
const fn validate(bytes: &[u8], fold_case: bool) -> Result<(), SymbolErrorKind> {
    if bytes.is_empty() {
        return Err(SymbolErrorKind::Empty);
    }
    if bytes.len() > MAX_SYMBOL_LEN {
        return Err(SymbolErrorKind::TooLong { len: bytes.len() });
    }
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b'A'..=b'Z' | b'0'..=b'9' | b'_' | b'-' => {}
            b'a'..=b'z' if fold_case => {}
            b'a'..=b'z' => return Err(SymbolErrorKind::LowerCase { byte: b, index: i }),
            _ => return Err(SymbolErrorKind::InvalidByte { byte: b, index: i }),
        }
        i += 1;
    }
    Ok(())
}

impl PartialEq for Symbol {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for Symbol {}

impl PartialOrd for Symbol {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Symbol {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.as_str().cmp(other.as_str())
    }
}

// Hashes like `str` so that maps keyed by `Symbol` can be queried with a `&str`.
impl Hash for Symbol {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl Borrow<str> for Symbol {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for Symbol {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Display for Symbol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Symbol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl FromStr for Symbol {
    type Err = SymbolError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Symbol::new(s)
    }
}

impl TryFrom<&str> for Symbol {
    type Error = SymbolError;

    fn try_from(s: &str) -> Result<Self, Self::Error> {
        Symbol::new(s)
    }
}

impl TryFrom<String> for Symbol {
    type Error = SymbolError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        validate(s.as_bytes(), false).map_err(|kind| SymbolError::new(&s, kind))?;
        Ok(Symbol(Repr::Shared(Arc::from(s))))
    }
}

/// Why a string is not a [`Symbol`]. The message names the offending character and its
/// byte position.
///
/// ```
/// use sequex_subjects::{Symbol, SymbolErrorKind};
///
/// let err = Symbol::new("BTC*").unwrap_err();
/// assert_eq!(err.kind(), SymbolErrorKind::InvalidByte { byte: b'*', index: 3 });
/// assert_eq!(err.to_string(), "invalid symbol \"BTC*\": '*' at byte 3 is not allowed (use A-Z, 0-9, '_' or '-')");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SymbolError {
    input: String,
    kind: SymbolErrorKind,
}

/// The classes of [`SymbolError`].
///
/// ```
/// use sequex_subjects::{Symbol, SymbolErrorKind};
///
/// assert_eq!(Symbol::new("").unwrap_err().kind(), SymbolErrorKind::Empty);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SymbolErrorKind {
    /// The input is empty.
    Empty,
    /// The input is longer than [`MAX_SYMBOL_LEN`] bytes.
    TooLong {
        /// The input's length in bytes.
        len: usize,
    },
    /// A lower-case letter where only [`Symbol::normalize`] accepts one.
    LowerCase {
        /// The letter.
        byte: u8,
        /// Its byte position.
        index: usize,
    },
    /// A byte that cannot stand in a subject token (`.`, `*`, `>`, whitespace, control,
    /// non-ASCII or other punctuation).
    InvalidByte {
        /// The byte (for non-ASCII input, the first byte of the character).
        byte: u8,
        /// Its byte position.
        index: usize,
    },
}

impl SymbolError {
    fn new(input: &str, kind: SymbolErrorKind) -> Self {
        SymbolError {
            input: input.to_owned(),
            kind,
        }
    }

    /// What was wrong.
    ///
    /// ```
    /// # use sequex_subjects::{Symbol, SymbolErrorKind};
    /// assert!(matches!(Symbol::new(&"X".repeat(65)).unwrap_err().kind(), SymbolErrorKind::TooLong { len: 65 }));
    /// ```
    pub fn kind(&self) -> SymbolErrorKind {
        self.kind
    }

    /// The rejected input.
    ///
    /// ```
    /// # use sequex_subjects::Symbol;
    /// assert_eq!(Symbol::new("BTC USDT").unwrap_err().input(), "BTC USDT");
    /// ```
    pub fn input(&self) -> &str {
        &self.input
    }
}

impl fmt::Display for SymbolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid symbol {:?}: ", self.input)?;
        match self.kind {
            SymbolErrorKind::Empty => f.write_str("it is empty"),
            SymbolErrorKind::TooLong { len } => {
                write!(f, "{len} bytes long, the limit is {MAX_SYMBOL_LEN}")
            }
            SymbolErrorKind::LowerCase { byte, index } => write!(
                f,
                "lower-case '{}' at byte {index} (use Symbol::normalize for exchange stream names)",
                byte as char
            ),
            SymbolErrorKind::InvalidByte { index, .. } => {
                // Name the whole character, not its first byte, for non-ASCII input.
                let ch = self.input[index..].chars().next().unwrap_or('?');
                write!(
                    f,
                    "{:?} at byte {index} is not allowed (use A-Z, 0-9, '_' or '-')",
                    ch
                )
            }
        }
    }
}

impl std::error::Error for SymbolError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_real_exchange_symbols() {
        for s in [
            "BTCUSDT",
            "1000SHIBUSDT",
            "BTCUSD_PERP",
            "ETHUSDT_250926",
            "BTC-USDT",
        ] {
            assert_eq!(Symbol::new(s).unwrap().as_str(), s);
        }
    }

    #[test]
    fn rejects_with_position() {
        // TC: (input, kind)
        let cases: &[(&str, SymbolErrorKind)] = &[
            ("", SymbolErrorKind::Empty),
            (
                "BTC.USDT",
                SymbolErrorKind::InvalidByte {
                    byte: b'.',
                    index: 3,
                },
            ),
            (
                "*",
                SymbolErrorKind::InvalidByte {
                    byte: b'*',
                    index: 0,
                },
            ),
            (
                "BTC>",
                SymbolErrorKind::InvalidByte {
                    byte: b'>',
                    index: 3,
                },
            ),
            (
                "BTC USDT",
                SymbolErrorKind::InvalidByte {
                    byte: b' ',
                    index: 3,
                },
            ),
            (
                "BTC\tX",
                SymbolErrorKind::InvalidByte {
                    byte: b'\t',
                    index: 3,
                },
            ),
            (
                "BTC\u{7f}",
                SymbolErrorKind::InvalidByte {
                    byte: 0x7f,
                    index: 3,
                },
            ),
            (
                "BTCÜ",
                SymbolErrorKind::InvalidByte {
                    byte: 0xc3,
                    index: 3,
                },
            ),
            (
                "btc",
                SymbolErrorKind::LowerCase {
                    byte: b'b',
                    index: 0,
                },
            ),
        ];
        for (input, kind) in cases {
            assert_eq!(Symbol::new(input).unwrap_err().kind(), *kind, "{input:?}");
        }
        let long = "A".repeat(MAX_SYMBOL_LEN + 1);
        assert_eq!(
            Symbol::new(&long).unwrap_err().kind(),
            SymbolErrorKind::TooLong { len: 65 }
        );
        assert!(Symbol::new(&long[1..]).is_ok());
    }

    #[test]
    fn error_names_non_ascii_character() {
        let err = Symbol::new("BTCÜ").unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid symbol \"BTCÜ\": 'Ü' at byte 3 is not allowed (use A-Z, 0-9, '_' or '-')"
        );
    }

    #[test]
    fn normalize_upper_cases_and_still_rejects() {
        assert_eq!(
            Symbol::normalize("btcusd_perp").unwrap().as_str(),
            "BTCUSD_PERP"
        );
        assert!(Symbol::normalize("btc.usdt").is_err());
    }

    #[test]
    fn static_and_shared_compare_equal() {
        const BTC: Symbol = Symbol::from_static("BTCUSDT");
        assert_eq!(BTC, Symbol::new("BTCUSDT").unwrap());
        assert_eq!(Symbol::try_from(String::from("BTCUSDT")).unwrap(), BTC);
    }
}
