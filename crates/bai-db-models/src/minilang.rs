//! The reference's filter and order mini-language of the GraphQL list queries (`user_list`,
//! `keypair_list`, ...: the `filter` and `order` arguments), parsed into an AST and converted into
//! sea-orm conditions and order clauses through a per-entity [`FieldMap`].
//!
//! Filter: `email == "a@b.c" & (full_name ilike "%kim%" | status in ["ACTIVE", "INACTIVE"])`.
//! Comparisons are `FIELD OP VALUE` with the operators `==`, `!=`, `<`, `<=`, `>`, `>=`,
//! `contains`, `like`, `ilike`, `in`, `notin`, `is`, `isnot`; values are double-quoted strings
//! (`\"` is a quote; other backslashes stay as they are, as in the reference), integers, floats (a
//! number with a `.`), `true`, `false`, `null` and `[...]` lists of values. `&` (and), `|` (or)
//! and the prefix `!` (not) combine them, with parentheses for grouping.
//!
//! The reference's LALR grammar resolves its ambiguities by shifting, so `&` and `|` have the same
//! precedence and group to the right (`a & b | c` is `a & (b | c)`), and `!` negates everything
//! after it (`!a & b` is `!(a & b)`); this parser does the same, so a filter selects the same rows
//! on both. `notin` is ours (the reference spells it `!(x in [...])`).
//!
//! Order: comma-separated field names, each optionally prefixed with `+` (ascending, the default)
//! or `-` (descending): `-created_at,+email`.

use std::fmt;

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, Utc};
use sea_orm::Condition;
use sea_orm::sea_query::extension::postgres::PgExpr;
use sea_orm::sea_query::{Alias, Expr, Order, SimpleExpr};
use uuid::Uuid;

/// A parse or conversion failure; the message names the field or the position.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MinilangError(pub String);

impl fmt::Display for MinilangError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for MinilangError {}

/// A literal of the language.
#[derive(Clone, Debug, PartialEq)]
pub enum Literal {
    String(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    Null,
    List(Vec<Literal>),
}

impl Literal {
    fn describe(&self) -> &'static str {
        match self {
            Literal::String(_) => "a string",
            Literal::Int(_) => "an integer",
            Literal::Float(_) => "a float",
            Literal::Bool(_) => "a boolean",
            Literal::Null => "null",
            Literal::List(_) => "a list",
        }
    }
}

/// A comparison operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Contains,
    Like,
    ILike,
    In,
    NotIn,
    Is,
    IsNot,
}

impl Op {
    fn from_word(word: &str) -> Option<Op> {
        Some(match word {
            "contains" => Op::Contains,
            "like" => Op::Like,
            "ilike" => Op::ILike,
            "in" => Op::In,
            "notin" => Op::NotIn,
            "is" => Op::Is,
            "isnot" => Op::IsNot,
            _ => return None,
        })
    }
}

/// A parsed filter expression.
#[derive(Clone, Debug, PartialEq)]
pub enum Filter {
    Compare {
        field: String,
        op: Op,
        value: Literal,
    },
    And(Box<Filter>, Box<Filter>),
    Or(Box<Filter>, Box<Filter>),
    Not(Box<Filter>),
}

/// One field of an order expression.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrderItem {
    pub field: String,
    pub descending: bool,
}

/// Parses a filter expression.
pub fn parse_filter(text: &str) -> Result<Filter, MinilangError> {
    let mut parser = Parser { text, pos: 0 };
    let filter = parser.expr()?;
    parser.skip_ws();
    if parser.pos < text.len() {
        return Err(parser.error("unexpected input"));
    }
    Ok(filter)
}

/// Parses an order expression; an empty one is an empty list.
pub fn parse_order(text: &str) -> Result<Vec<OrderItem>, MinilangError> {
    let error = |pos: usize, what: &str| {
        MinilangError(format!(
            "Query ordering parsing error: {what} at position {pos}"
        ))
    };
    let mut items = Vec::new();
    let mut parser = Parser { text, pos: 0 };
    parser.skip_ws();
    if parser.pos == text.len() {
        return Ok(items);
    }
    loop {
        parser.skip_ws();
        let descending = match parser.peek() {
            Some('+') => {
                parser.pos += 1;
                false
            }
            Some('-') => {
                parser.pos += 1;
                true
            }
            _ => false,
        };
        parser.skip_ws();
        let start = parser.pos;
        let Some(field) = parser.name() else {
            return Err(error(start, "expected a field name"));
        };
        items.push(OrderItem {
            field: field.to_owned(),
            descending,
        });
        parser.skip_ws();
        match parser.peek() {
            None => return Ok(items),
            Some(',') => parser.pos += 1,
            Some(_) => return Err(error(parser.pos, "expected `,`")),
        }
    }
}

struct Parser<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Parser<'a> {
    fn error(&self, what: &str) -> MinilangError {
        MinilangError(format!(
            "Query filter parsing error: {what} at position {}",
            self.pos
        ))
    }

    fn rest(&self) -> &'a str {
        &self.text[self.pos..]
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn skip_ws(&mut self) {
        let rest = self.rest();
        self.pos += rest.len() - rest.trim_start().len();
    }

    /// A `CNAME`: a letter or `_`, then letters, digits and `_`.
    fn name(&mut self) -> Option<&'a str> {
        let rest = self.rest();
        let mut chars = rest.char_indices();
        match chars.next() {
            Some((_, c)) if c.is_ascii_alphabetic() || c == '_' => {}
            _ => return None,
        }
        let end = chars
            .find(|(_, c)| !(c.is_ascii_alphanumeric() || *c == '_'))
            .map_or(rest.len(), |(index, _)| index);
        self.pos += end;
        Some(&rest[..end])
    }

    /// `primary (("&" | "|") expr)?`: right-grouping, one precedence.
    fn expr(&mut self) -> Result<Filter, MinilangError> {
        let left = self.primary()?;
        self.skip_ws();
        match self.peek() {
            Some('&') => {
                self.pos += 1;
                Ok(Filter::And(Box::new(left), Box::new(self.expr()?)))
            }
            Some('|') => {
                self.pos += 1;
                Ok(Filter::Or(Box::new(left), Box::new(self.expr()?)))
            }
            _ => Ok(left),
        }
    }

    fn primary(&mut self) -> Result<Filter, MinilangError> {
        self.skip_ws();
        match self.peek() {
            Some('!') if !self.rest().starts_with("!=") => {
                self.pos += 1;
                Ok(Filter::Not(Box::new(self.expr()?)))
            }
            Some('(') => {
                self.pos += 1;
                let inner = self.expr()?;
                self.skip_ws();
                if self.peek() != Some(')') {
                    return Err(self.error("expected `)`"));
                }
                self.pos += 1;
                Ok(inner)
            }
            None => Err(self.error("unexpected end of the expression")),
            Some(_) => self.comparison(),
        }
    }

    fn comparison(&mut self) -> Result<Filter, MinilangError> {
        let Some(field) = self.name() else {
            return Err(self.error("expected a field name"));
        };
        self.skip_ws();
        let op = self.operator()?;
        let value = self.value()?;
        Ok(Filter::Compare {
            field: field.to_owned(),
            op,
            value,
        })
    }

    fn operator(&mut self) -> Result<Op, MinilangError> {
        for (symbol, op) in [
            ("==", Op::Eq),
            ("!=", Op::Ne),
            (">=", Op::Ge),
            ("<=", Op::Le),
            (">", Op::Gt),
            ("<", Op::Lt),
        ] {
            if self.rest().starts_with(symbol) {
                self.pos += symbol.len();
                return Ok(op);
            }
        }
        let start = self.pos;
        if let Some(op) = self.name().and_then(Op::from_word) {
            return Ok(op);
        }
        self.pos = start;
        Err(self.error("expected an operator"))
    }

    fn value(&mut self) -> Result<Literal, MinilangError> {
        self.skip_ws();
        match self.peek() {
            Some('"') => self.string(),
            Some('[') => {
                self.pos += 1;
                let mut items = Vec::new();
                self.skip_ws();
                if self.peek() == Some(']') {
                    self.pos += 1;
                    return Ok(Literal::List(items));
                }
                loop {
                    items.push(self.value()?);
                    self.skip_ws();
                    match self.peek() {
                        Some(',') => self.pos += 1,
                        Some(']') => {
                            self.pos += 1;
                            return Ok(Literal::List(items));
                        }
                        _ => return Err(self.error("expected `,` or `]`")),
                    }
                }
            }
            Some(c) if c.is_ascii_digit() || matches!(c, '+' | '-' | '.') => self.number(),
            _ => {
                let start = self.pos;
                match self.name() {
                    Some("true") => Ok(Literal::Bool(true)),
                    Some("false") => Ok(Literal::Bool(false)),
                    Some("null") => Ok(Literal::Null),
                    _ => {
                        self.pos = start;
                        Err(self.error("expected a value"))
                    }
                }
            }
        }
    }

    /// `"..."` ending at the first quote not escaped by a backslash; `\"` becomes `"`.
    fn string(&mut self) -> Result<Literal, MinilangError> {
        let rest = self.rest();
        let mut escaped = false;
        for (index, c) in rest.char_indices().skip(1) {
            match c {
                '\\' => escaped = !escaped,
                '"' if !escaped => {
                    let raw = &rest[1..index];
                    self.pos += index + 1;
                    return Ok(Literal::String(raw.replace("\\\"", "\"")));
                }
                _ => escaped = false,
            }
        }
        Err(self.error("unterminated string"))
    }

    /// `SIGNED_NUMBER`; a float when it has a `.`, otherwise an integer.
    fn number(&mut self) -> Result<Literal, MinilangError> {
        let start = self.pos;
        let rest = self.rest();
        let end = rest
            .char_indices()
            .find(|&(index, c)| {
                !(c.is_ascii_alphanumeric()
                    || c == '.'
                    || (matches!(c, '+' | '-')
                        && (index == 0 || rest[..index].ends_with(['e', 'E']))))
            })
            .map_or(rest.len(), |(index, _)| index);
        let text = &rest[..end];
        let parsed = if text.contains('.') {
            text.parse::<f64>().ok().map(Literal::Float)
        } else {
            text.parse::<i64>().ok().map(Literal::Int)
        };
        match parsed {
            Some(literal) => {
                self.pos += end;
                Ok(literal)
            }
            None => {
                self.pos = start;
                Err(self.error(&format!("invalid number {text:?}")))
            }
        }
    }
}

/// How a field's literals become SQL values.
#[derive(Clone, Copy, Debug)]
pub enum Kind {
    Text,
    Bool,
    Integer,
    Uuid,
    /// Compared with timestamps parsed from strings (RFC 3339, `YYYY-MM-DD[ HH:MM[:SS[.f]]]`;
    /// without an offset, UTC).
    Timestamp,
    /// A PostgreSQL enum stored by value; a literal may name a member (`"ACTIVE"`) or give its
    /// value (`"active"`). Filters compare the column as text.
    Enum(&'static [(&'static str, &'static str)]),
}

/// One field the language may name, and the column it stands for.
#[derive(Clone, Debug)]
pub struct Field {
    pub name: &'static str,
    pub column: SimpleExpr,
    pub kind: Kind,
    /// Whether `order` may name it.
    pub orderable: bool,
}

/// The fields of one entity's list query.
#[derive(Clone, Debug, Default)]
pub struct FieldMap(pub Vec<Field>);

fn unknown_field(name: &str) -> MinilangError {
    MinilangError(format!("Unknown/unsupported field name: {name}"))
}

impl FieldMap {
    fn field(&self, name: &str) -> Result<&Field, MinilangError> {
        self.0
            .iter()
            .find(|field| field.name == name)
            .ok_or_else(|| unknown_field(name))
    }

    /// Parses `text` and converts it into a condition.
    pub fn filter(&self, text: &str) -> Result<Condition, MinilangError> {
        Ok(Condition::all().add(self.condition(&parse_filter(text)?)?))
    }

    /// Parses `text` and converts it into order clauses.
    pub fn order(&self, text: &str) -> Result<Vec<(SimpleExpr, Order)>, MinilangError> {
        parse_order(text)?
            .iter()
            .map(|item| {
                let field = self.field(&item.field)?;
                if !field.orderable {
                    return Err(unknown_field(&item.field));
                }
                let order = if item.descending {
                    Order::Desc
                } else {
                    Order::Asc
                };
                Ok((field.column.clone(), order))
            })
            .collect()
    }

    /// The SQL expression of a parsed filter.
    pub fn condition(&self, filter: &Filter) -> Result<SimpleExpr, MinilangError> {
        Ok(match filter {
            Filter::And(left, right) => self.condition(left)?.and(self.condition(right)?),
            Filter::Or(left, right) => self.condition(left)?.or(self.condition(right)?),
            Filter::Not(inner) => self.condition(inner)?.not(),
            Filter::Compare { field, op, value } => self.compare(self.field(field)?, *op, value)?,
        })
    }

    fn compare(&self, field: &Field, op: Op, value: &Literal) -> Result<SimpleExpr, MinilangError> {
        let column = match field.kind {
            Kind::Enum(_) => Expr::expr(field.column.clone()).cast_as(Alias::new("text")),
            _ => field.column.clone(),
        };
        let column = Expr::expr(column);
        let invalid =
            |why: String| MinilangError(format!("Invalid value for field {}: {why}", field.name));
        Ok(match op {
            Op::Is | Op::IsNot => {
                let test = match value {
                    Literal::Null => column.is_null(),
                    Literal::Bool(flag) => column.is(*flag),
                    other => {
                        return Err(invalid(format!(
                            "`is`/`isnot` take null, true or false, not {}",
                            other.describe()
                        )));
                    }
                };
                if op == Op::IsNot { test.not() } else { test }
            }
            Op::Eq if *value == Literal::Null => column.is_null(),
            Op::Ne if *value == Literal::Null => column.is_not_null(),
            Op::In | Op::NotIn => {
                let Literal::List(items) = value else {
                    return Err(invalid(format!(
                        "`in`/`notin` take a list, not {}",
                        value.describe()
                    )));
                };
                let values = items
                    .iter()
                    .map(|item| convert(field, item).map_err(invalid))
                    .collect::<Result<Vec<_>, _>>()?;
                if op == Op::In {
                    column.is_in(values)
                } else {
                    column.is_not_in(values)
                }
            }
            Op::Contains | Op::Like | Op::ILike => {
                if !matches!(field.kind, Kind::Text | Kind::Enum(_)) {
                    return Err(invalid("pattern operators apply to text fields".into()));
                }
                let Literal::String(pattern) = value else {
                    return Err(invalid(format!(
                        "a pattern is a string, not {}",
                        value.describe()
                    )));
                };
                match op {
                    Op::Contains => column.like(format!("%{pattern}%")),
                    Op::Like => column.like(pattern.as_str()),
                    _ => column.ilike(pattern.as_str()),
                }
            }
            Op::Eq | Op::Ne | Op::Lt | Op::Le | Op::Gt | Op::Ge => {
                let value = convert(field, value).map_err(invalid)?;
                match op {
                    Op::Eq => column.eq(value),
                    Op::Ne => column.ne(value),
                    Op::Lt => column.lt(value),
                    Op::Le => column.lte(value),
                    Op::Gt => column.gt(value),
                    _ => column.gte(value),
                }
            }
        })
    }
}

/// A literal as the SQL value of `field`.
fn convert(field: &Field, value: &Literal) -> Result<sea_orm::Value, String> {
    let wrong = || {
        format!(
            "expected {}, got {}",
            expected(field.kind),
            value.describe()
        )
    };
    Ok(match (field.kind, value) {
        (Kind::Text, Literal::String(text)) => text.clone().into(),
        (Kind::Bool, Literal::Bool(flag)) => (*flag).into(),
        (Kind::Integer, Literal::Int(number)) => (*number).into(),
        (Kind::Uuid, Literal::String(text)) => Uuid::parse_str(text)
            .map_err(|_| format!("{text:?} is not a UUID"))?
            .into(),
        (Kind::Timestamp, Literal::String(text)) => parse_timestamp(text)
            .ok_or_else(|| format!("{text:?} is not a date and time"))?
            .into(),
        (Kind::Enum(members), Literal::String(text)) => members
            .iter()
            .find(|(name, stored)| name == text || stored == text)
            .map(|(_, stored)| (*stored).to_owned())
            .ok_or_else(|| {
                let names: Vec<_> = members.iter().map(|(name, _)| *name).collect();
                format!(
                    "expected one of `{}` or their values; got {text:?}",
                    names.join(", ")
                )
            })?
            .into(),
        _ => return Err(wrong()),
    })
}

fn expected(kind: Kind) -> &'static str {
    match kind {
        Kind::Text | Kind::Enum(_) => "a string",
        Kind::Bool => "true or false",
        Kind::Integer => "an integer",
        Kind::Uuid => "a UUID string",
        Kind::Timestamp => "a date and time string",
    }
}

/// What the reference's `dateutil` parse accepts in practice: RFC 3339 and ISO 8601 with a space
/// or `T`, with or without seconds, fractions and offset; a bare date is midnight. No offset: UTC.
pub fn parse_timestamp(text: &str) -> Option<DateTime<FixedOffset>> {
    let text = text.trim();
    if let Ok(parsed) = DateTime::parse_from_rfc3339(text) {
        return Some(parsed);
    }
    for format in [
        "%Y-%m-%d %H:%M:%S%.f%:z",
        "%Y-%m-%dT%H:%M:%S%.f%:z",
        "%Y-%m-%d %H:%M:%S%.f%z",
        "%Y-%m-%dT%H:%M:%S%.f%z",
    ] {
        if let Ok(parsed) = DateTime::parse_from_str(text, format) {
            return Some(parsed);
        }
    }
    for format in [
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%dT%H:%M",
    ] {
        if let Ok(parsed) = NaiveDateTime::parse_from_str(text, format) {
            return Some(parsed.and_utc().fixed_offset());
        }
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|date| date.and_hms_opt(0, 0, 0))
        .map(|midnight| DateTime::<Utc>::from_naive_utc_and_offset(midnight, Utc).fixed_offset())
}

#[cfg(test)]
mod tests {
    use sea_orm::sea_query::{Alias, Expr, PostgresQueryBuilder, Query};

    use super::*;

    fn compare(field: &str, op: Op, value: Literal) -> Filter {
        Filter::Compare {
            field: field.into(),
            op,
            value,
        }
    }

    #[test]
    fn comparisons_and_values() {
        assert_eq!(
            parse_filter(r#"email == "a@b.c""#),
            Ok(compare("email", Op::Eq, Literal::String("a@b.c".into())))
        );
        assert_eq!(
            parse_filter(r#"full_name ilike "%kim%""#),
            Ok(compare(
                "full_name",
                Op::ILike,
                Literal::String("%kim%".into())
            ))
        );
        assert_eq!(
            parse_filter(r#"status in ["ACTIVE", "INACTIVE"]"#),
            Ok(compare(
                "status",
                Op::In,
                Literal::List(vec![
                    Literal::String("ACTIVE".into()),
                    Literal::String("INACTIVE".into())
                ])
            ))
        );
        assert_eq!(
            parse_filter("x notin []"),
            Ok(compare("x", Op::NotIn, Literal::List(vec![])))
        );
        assert_eq!(
            parse_filter("is_active==true"),
            Ok(compare("is_active", Op::Eq, Literal::Bool(true)))
        );
        assert_eq!(
            parse_filter("x is null"),
            Ok(compare("x", Op::Is, Literal::Null))
        );
        assert_eq!(
            parse_filter("x isnot null"),
            Ok(compare("x", Op::IsNot, Literal::Null))
        );
        assert_eq!(
            parse_filter("n >= -12"),
            Ok(compare("n", Op::Ge, Literal::Int(-12)))
        );
        assert_eq!(
            parse_filter("n < 1.5"),
            Ok(compare("n", Op::Lt, Literal::Float(1.5)))
        );
        assert_eq!(
            parse_filter("n <= +3"),
            Ok(compare("n", Op::Le, Literal::Int(3)))
        );
        assert_eq!(
            parse_filter("n != 3"),
            Ok(compare("n", Op::Ne, Literal::Int(3)))
        );
        assert_eq!(
            parse_filter(r#"name contains "x""#),
            Ok(compare("name", Op::Contains, Literal::String("x".into())))
        );
        assert_eq!(
            parse_filter(r#"name like "a_%""#),
            Ok(compare("name", Op::Like, Literal::String("a_%".into())))
        );
        // Only \" is unescaped, as in the reference; other backslashes stay.
        assert_eq!(
            parse_filter(r#"name == "say \"hi\" \\ \n""#),
            Ok(compare(
                "name",
                Op::Eq,
                Literal::String(r#"say "hi" \\ \n"#.into())
            ))
        );
    }

    #[test]
    fn combinations_group_as_the_reference_does() {
        let a = || compare("a", Op::Eq, Literal::Int(1));
        let b = || compare("b", Op::Eq, Literal::Int(2));
        let c = || compare("c", Op::Eq, Literal::Int(3));
        let and = |x, y| Filter::And(Box::new(x), Box::new(y));
        let or = |x, y| Filter::Or(Box::new(x), Box::new(y));
        assert_eq!(
            parse_filter("a == 1 & b == 2 | c == 3"),
            Ok(and(a(), or(b(), c())))
        );
        assert_eq!(
            parse_filter("(a == 1 & b == 2) | c == 3"),
            Ok(or(and(a(), b()), c()))
        );
        assert_eq!(
            parse_filter("!a == 1 & b == 2"),
            Ok(Filter::Not(Box::new(and(a(), b()))))
        );
        assert_eq!(
            parse_filter("!(a == 1) & b == 2"),
            Ok(Filter::Not(Box::new(and(a(), b()))))
        );
        assert_eq!(
            parse_filter("(!a == 1) & b == 2"),
            Ok(and(Filter::Not(Box::new(a())), b()))
        );
    }

    #[test]
    fn syntax_errors_name_the_position() {
        for (text, message) in [
            ("", "unexpected end of the expression at position 0"),
            ("email", "expected an operator at position 5"),
            ("email ==", "expected a value at position 8"),
            ("email == \"x", "unterminated string at position 9"),
            ("email = \"x\"", "expected an operator at position 6"),
            ("email == foo", "expected a value at position 9"),
            ("(a == 1", "expected `)` at position 7"),
            ("a == 1 b == 2", "unexpected input at position 7"),
            ("a == 1 &", "unexpected end of the expression at position 8"),
            ("a in [1, 2", "expected `,` or `]` at position 10"),
            ("a == 1e5", "invalid number \"1e5\" at position 5"),
            ("== 1", "expected a field name at position 0"),
        ] {
            assert_eq!(
                parse_filter(text),
                Err(MinilangError(format!(
                    "Query filter parsing error: {message}"
                ))),
                "{text}"
            );
        }
    }

    #[test]
    fn order_expressions() {
        assert_eq!(parse_order(""), Ok(vec![]));
        assert_eq!(
            parse_order("-created_at, +email,name"),
            Ok(vec![
                OrderItem {
                    field: "created_at".into(),
                    descending: true
                },
                OrderItem {
                    field: "email".into(),
                    descending: false
                },
                OrderItem {
                    field: "name".into(),
                    descending: false
                },
            ])
        );
        assert_eq!(
            parse_order("email,"),
            Err(MinilangError(
                "Query ordering parsing error: expected a field name at position 6".into()
            ))
        );
        assert_eq!(
            parse_order("email name"),
            Err(MinilangError(
                "Query ordering parsing error: expected `,` at position 6".into()
            ))
        );
    }

    const STATUSES: &[(&str, &str)] = &[("ACTIVE", "active"), ("INACTIVE", "inactive")];

    fn map() -> FieldMap {
        let column = |name: &str| SimpleExpr::from(Expr::col((Alias::new("t"), Alias::new(name))));
        FieldMap(vec![
            Field {
                name: "email",
                column: column("email"),
                kind: Kind::Text,
                orderable: true,
            },
            Field {
                name: "status",
                column: column("status"),
                kind: Kind::Enum(STATUSES),
                orderable: true,
            },
            Field {
                name: "created_at",
                column: column("created_at"),
                kind: Kind::Timestamp,
                orderable: true,
            },
            Field {
                name: "is_active",
                column: column("is_active"),
                kind: Kind::Bool,
                orderable: false,
            },
            Field {
                name: "rate_limit",
                column: column("rate_limit"),
                kind: Kind::Integer,
                orderable: true,
            },
            Field {
                name: "user",
                column: column("user"),
                kind: Kind::Uuid,
                orderable: true,
            },
        ])
    }

    fn sql(filter: &str) -> Result<String, MinilangError> {
        let condition = map().filter(filter)?;
        Ok(Query::select()
            .column(Alias::new("x"))
            .from(Alias::new("t"))
            .cond_where(condition)
            .to_string(PostgresQueryBuilder))
    }

    #[test]
    fn filters_become_sql() {
        let base = r#"SELECT "x" FROM "t" WHERE "#;
        for (filter, condition) in [
            (r#"email == "a@b.c""#, r#""t"."email" = 'a@b.c'"#),
            (
                r#"email ilike "%kim%" | email contains "x""#,
                r#"("t"."email" ILIKE '%kim%') OR "t"."email" LIKE '%x%'"#,
            ),
            (
                r#"status in ["ACTIVE", "inactive"]"#,
                r#"CAST("t"."status" AS text) IN ('active', 'inactive')"#,
            ),
            (
                r#"created_at >= "2024-01-01""#,
                r#""t"."created_at" >= '2024-01-01 00:00:00.000000 +00:00'"#,
            ),
            ("is_active == true", r#""t"."is_active" = TRUE"#),
            ("is_active is false", r#""t"."is_active" IS FALSE"#),
            ("email is null", r#""t"."email" IS NULL"#),
            ("email isnot null", r#"NOT "t"."email" IS NULL"#),
            ("email != null", r#""t"."email" IS NOT NULL"#),
            (
                "rate_limit notin [1, 2]",
                r#""t"."rate_limit" NOT IN (1, 2)"#,
            ),
            (
                r#"(!rate_limit < 5) & user == "f38dea23-50fa-42a0-b5ae-338f5f4693f4""#,
                r#"(NOT "t"."rate_limit" < 5) AND "t"."user" = 'f38dea23-50fa-42a0-b5ae-338f5f4693f4'"#,
            ),
        ] {
            assert_eq!(
                sql(filter).as_deref(),
                Ok(format!("{base}{condition}").as_str()),
                "{filter}"
            );
        }
    }

    #[test]
    fn conversion_errors_name_the_field() {
        for (filter, message) in [
            ("nope == 1", "Unknown/unsupported field name: nope"),
            (
                "email == 1",
                "Invalid value for field email: expected a string, got an integer",
            ),
            (
                r#"status == "GONE""#,
                r#"Invalid value for field status: expected one of `ACTIVE, INACTIVE` or their values; got "GONE""#,
            ),
            (
                r#"created_at > "yesterday""#,
                r#"Invalid value for field created_at: "yesterday" is not a date and time"#,
            ),
            (
                r#"user == "x""#,
                r#"Invalid value for field user: "x" is not a UUID"#,
            ),
            (
                r#"rate_limit like "1%""#,
                "Invalid value for field rate_limit: pattern operators apply to text fields",
            ),
            (
                r#"email in "a""#,
                "Invalid value for field email: `in`/`notin` take a list, not a string",
            ),
            (
                "email is 1",
                "Invalid value for field email: `is`/`isnot` take null, true or false, not an integer",
            ),
        ] {
            assert_eq!(sql(filter), Err(MinilangError(message.into())), "{filter}");
        }
    }

    #[test]
    fn orders_become_clauses() {
        let order = map().order("-created_at,email").expect("order");
        assert_eq!(order.len(), 2);
        assert!(matches!(order[0].1, Order::Desc));
        assert!(matches!(order[1].1, Order::Asc));
        assert_eq!(
            map().order("is_active").unwrap_err(),
            MinilangError("Unknown/unsupported field name: is_active".into())
        );
        assert_eq!(
            map().order("-nope").unwrap_err(),
            MinilangError("Unknown/unsupported field name: nope".into())
        );
    }

    #[test]
    fn timestamps() {
        for (text, expected) in [
            ("2024-01-01", "2024-01-01T00:00:00+00:00"),
            ("2024-01-01 12:30", "2024-01-01T12:30:00+00:00"),
            ("2024-01-01T12:30:15.5", "2024-01-01T12:30:15.500+00:00"),
            ("2024-01-01T12:30:15+09:00", "2024-01-01T12:30:15+09:00"),
            ("2024-01-01 12:30:15+0900", "2024-01-01T12:30:15+09:00"),
        ] {
            assert_eq!(
                parse_timestamp(text).map(|parsed| parsed.to_rfc3339()),
                Some(expected.to_owned()),
                "{text}"
            );
        }
        assert_eq!(parse_timestamp("soon"), None);
    }
}
