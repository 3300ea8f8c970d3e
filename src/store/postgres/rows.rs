//! PostgreSQL's side of the row codec: its rows read as codec columns, and
//! codec values bound as the types a prepared statement's parameters have.

use tokio_postgres::{
    types::{Kind, ToSql, Type},
    Row, Statement,
};

use super::bad;
use crate::{
    error::{Error, Result},
    store::codec::{Columns, Value},
};

/// Integer columns are `INTEGER` (32 bits) or `BIGINT`.
fn is_int4(row: &Row, i: usize) -> bool {
    *row.columns()[i].type_() == Type::INT4
}

impl Columns for Row {
    type Error = Error;
    fn text(&self, i: usize) -> Result<String> {
        Ok(self.get(i))
    }
    fn maybe_text(&self, i: usize) -> Result<Option<String>> {
        Ok(self.get(i))
    }
    fn int(&self, i: usize) -> Result<i64> {
        Ok(match is_int4(self, i) {
            true => i64::from(self.get::<_, i32>(i)),
            false => self.get(i),
        })
    }
    fn maybe_int(&self, i: usize) -> Result<Option<i64>> {
        Ok(match is_int4(self, i) {
            true => self.get::<_, Option<i32>>(i).map(i64::from),
            false => self.get(i),
        })
    }
    fn bad(what: &str, value: &str) -> Error {
        bad(what, value)
    }
}

/// How a parameter of one type is bound.
#[derive(Clone, Copy)]
enum Width {
    Int4,
    Int8,
    Text,
}

impl Width {
    fn of(ty: &Type) -> Width {
        match *ty {
            Type::INT4 => Width::Int4,
            Type::INT8 => Width::Int8,
            _ => Width::Text,
        }
    }
}

fn misfit(value: &Value<'_>, ty: &Type) -> Error {
    Error::Internal(format!("the row codec bound {value:?} to a {ty} parameter"))
}

fn int(value: &Value<'_>, ty: &Type) -> Result<Option<i64>> {
    match value {
        Value::Null => Ok(None),
        Value::Int(n) => Ok(Some(*n)),
        Value::Text(_) => Err(misfit(value, ty)),
    }
}

/// An `INTEGER` takes the low 32 bits, as it always has.
fn int4(value: &Value<'_>, ty: &Type) -> Result<Option<i32>> {
    Ok(int(value, ty)?.map(|n| n as i32))
}

fn text<'v>(value: &'v Value<'_>, ty: &Type) -> Result<Option<&'v str>> {
    match value {
        Value::Null => Ok(None),
        Value::Text(s) => Ok(Some(s)),
        Value::Int(_) => Err(misfit(value, ty)),
    }
}

/// One parameter, as the Rust type its PostgreSQL type takes.
enum Arg<'v> {
    Int4s(Vec<Option<i32>>),
    Int8s(Vec<Option<i64>>),
    Texts(Vec<Option<&'v str>>),
}

impl Arg<'_> {
    fn sql(&self) -> &(dyn ToSql + Sync) {
        match self {
            Arg::Int4s(v) => v,
            Arg::Int8s(v) => v,
            Arg::Texts(v) => v,
        }
    }
}

/// Codec values bound to a prepared statement's parameters.
pub(super) struct Args<'v>(Vec<Arg<'v>>);

impl<'v> Args<'v> {
    /// Many rows' values column by column, one array parameter for each
    /// column (as `UNNEST($1::TEXT[], …)` takes them).
    pub(super) fn columns(rows: &'v [Vec<Value<'_>>], statement: &Statement) -> Result<Args<'v>> {
        let wanted = statement.params().len();
        if rows.iter().any(|row| row.len() != wanted) {
            return Err(Error::Internal(format!(
                "the row codec gave rows of other than {wanted} values"
            )));
        }
        let args = statement.params().iter().enumerate().map(|(j, ty)| {
            let member = match ty.kind() {
                Kind::Array(member) => member,
                _ => ty,
            };
            let column = rows.iter().map(move |row| &row[j]);
            Ok(match Width::of(member) {
                Width::Int4 => Arg::Int4s(column.map(|v| int4(v, member)).collect::<Result<_>>()?),
                Width::Int8 => Arg::Int8s(column.map(|v| int(v, member)).collect::<Result<_>>()?),
                Width::Text => Arg::Texts(column.map(|v| text(v, member)).collect::<Result<_>>()?),
            })
        });
        Ok(Args(args.collect::<Result<_>>()?))
    }

    /// The parameters as `execute` and `query` take them.
    pub(super) fn refs(&self) -> Vec<&(dyn ToSql + Sync)> {
        self.0.iter().map(Arg::sql).collect()
    }
}
