//! A strict reader of the few Python pickles that Backend.AI puts in msgpack ext types: a
//! `Decimal`, an enum member, a `BinarySize` and a `ResourceSlot` (all `pickle.dumps(obj,
//! protocol=5)`).
//!
//! It is not an unpickler. A stack machine over the opcodes these pickles are made of builds a
//! small tree of what the pickle describes (globals, calls, strings, ints, tuples, dicts, None); the
//! functions at the top then check the tree has the one shape each ext type has and take the
//! values out. It never imports or calls anything, any other opcode or shape is an error that
//! names it, and stack, memo, marks and tree are bounded, so bytes from the network cost little.

use std::collections::HashSet;

use rmpv::Value;

/// The string of `decimal.Decimal("…")`, as ext 3 carries it.
pub(super) fn decimal(bytes: &[u8]) -> Result<String, String> {
    let pickle = Pickle::read(bytes)?;
    pickle
        .decimal_text(pickle.root)
        .map(str::to_owned)
        .ok_or_else(|| {
            format!(
                "expected decimal.Decimal(str), found {}",
                pickle.describe(pickle.root)
            )
        })
}

/// The value of an enum member, `Class(value)` as `Enum.__reduce_ex__` writes it (ext 6): a
/// string for `StrEnum` and `(str, Enum)` members, an integer for integer-valued enums.
pub(super) fn enum_value(bytes: &[u8]) -> Result<Value, String> {
    let pickle = Pickle::read(bytes)?;
    let found = || {
        format!(
            "expected Enum(str or int), found {}",
            pickle.describe(pickle.root)
        )
    };
    let Some(Call {
        args: [value],
        state: None,
        ..
    }) = pickle.call(pickle.root, Construction::Reduce)
    else {
        return Err(found());
    };
    match pickle.object(*value) {
        Object::Str(text) => Ok(Value::from(text.as_str())),
        Object::Int(number) => int_value(*number),
        _ => Err(found()),
    }
}

/// The integer of an `int` subclass, `cls.__new__(cls, n)` (ext 16, `BinarySize`).
pub(super) fn int_subclass(bytes: &[u8]) -> Result<Value, String> {
    let pickle = Pickle::read(bytes)?;
    if let Some(Call {
        args: [value],
        state: None,
        ..
    }) = pickle.call(pickle.root, Construction::NewObj)
        && let Object::Int(number) = pickle.object(*value)
    {
        return int_value(*number);
    }
    Err(format!(
        "expected int subclass __new__(int), found {}",
        pickle.describe(pickle.root)
    ))
}

/// The slots of a `ResourceSlot` (ext 8) as a map of slot name to decimal string.
///
/// A `ResourceSlot` is a `UserDict` subclass with `__slots__ = ("data",)`, so it pickles as
/// `cls.__new__(cls)` followed by BUILD with the state `(None, {"data": {slot: Decimal}})`; a plain
/// instance `__dict__` state `{"data": {…}}` is accepted too. Values that are `str` or `int` instead
/// of `Decimal` (the class allows them) become their decimal text.
pub(super) fn resource_slot(bytes: &[u8]) -> Result<Value, String> {
    let pickle = Pickle::read(bytes)?;
    let found = || {
        format!(
            "expected UserDict subclass __new__() with a state holding {{\"data\": {{str: Decimal}}}}, found {}",
            pickle.describe(pickle.root)
        )
    };
    let Some(Call {
        args: [],
        state: Some(state),
        ..
    }) = pickle.call(pickle.root, Construction::NewObj)
    else {
        return Err(found());
    };
    let Some(data) = pickle.data_dict(state) else {
        return Err(found());
    };
    let mut slots = Vec::with_capacity(data.len());
    let mut seen = HashSet::with_capacity(data.len());
    for &(key, value) in data {
        let Object::Str(slot) = pickle.object(key) else {
            return Err(format!("slot name {} is not a str", pickle.describe(key)));
        };
        let amount = match pickle.object(value) {
            Object::Str(text) => text.clone(),
            Object::Int(number) => number.to_string(),
            _ => match pickle.decimal_text(value) {
                Some(text) => text.to_owned(),
                None => {
                    return Err(format!(
                        "slot {slot:?} holds {}, not a Decimal",
                        pickle.describe(value)
                    ));
                }
            },
        };
        if !seen.insert(slot.as_str()) {
            return Err(format!("slot {slot:?} appears twice"));
        }
        slots.push((Value::from(slot.as_str()), Value::from(amount)));
    }
    Ok(Value::Map(slots))
}

/// Bounds on what a pickle may build; real ones use a few dozen entries of each.
const MAX_STACK: usize = 4096;
const MAX_MARKS: usize = 64;
const MAX_MEMO: usize = 4096;
/// Objects plus dict entries.
const MAX_TREE: usize = 65_536;
/// The highest protocol Python 3.12 writes.
const MAX_PROTOCOL: u8 = 5;

/// Where an object sits in [`Pickle::objects`]; memo and stack hold these, so an object the
/// pickle mutates later (a dict filled by SETITEMS) is the same object wherever it is referenced.
type ObjectId = usize;

/// What the pickle describes, without any of it being run.
#[derive(Debug)]
enum Object {
    None,
    Int(i128),
    Str(String),
    Tuple(Vec<ObjectId>),
    Dict(Vec<(ObjectId, ObjectId)>),
    /// A reference to `module.name` (STACK_GLOBAL), both [`Object::Str`]; nothing is imported.
    /// The strings are referenced rather than copied, so repeating STACK_GLOBAL over memoized
    /// strings costs no memory.
    Global {
        module: ObjectId,
        name: ObjectId,
    },
    /// `callable(*args)` (REDUCE) or `cls.__new__(cls, *args)` (NEWOBJ), with the state BUILD
    /// gave it afterwards.
    Instance {
        callable: ObjectId,
        args: ObjectId,
        construction: Construction,
        state: Option<ObjectId>,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Construction {
    Reduce,
    NewObj,
}

/// An [`Object::Instance`] of a global with its argument tuple taken apart.
struct Call<'a> {
    module: &'a str,
    name: &'a str,
    args: &'a [ObjectId],
    state: Option<ObjectId>,
}

/// A read pickle: the tree and the object STOP returned.
#[derive(Debug)]
struct Pickle {
    objects: Vec<Object>,
    root: ObjectId,
}

// The opcodes the reader runs (pickletools' names).
const MARK: u8 = b'(';
const STOP: u8 = b'.';
const BININT: u8 = b'J';
const BININT1: u8 = b'K';
const BININT2: u8 = b'M';
const NONE: u8 = b'N';
const REDUCE: u8 = b'R';
const BINUNICODE: u8 = b'X';
const BUILD: u8 = b'b';
const BINGET: u8 = b'h';
const LONG_BINGET: u8 = b'j';
const SETITEM: u8 = b's';
const TUPLE: u8 = b't';
const SETITEMS: u8 = b'u';
const EMPTY_TUPLE: u8 = b')';
const EMPTY_DICT: u8 = b'}';
const PROTO: u8 = 0x80;
const NEWOBJ: u8 = 0x81;
const TUPLE1: u8 = 0x85;
const TUPLE2: u8 = 0x86;
const TUPLE3: u8 = 0x87;
const LONG1: u8 = 0x8a;
const SHORT_BINUNICODE: u8 = 0x8c;
const BINUNICODE8: u8 = 0x8d;
const STACK_GLOBAL: u8 = 0x93;
const MEMOIZE: u8 = 0x94;
const FRAME: u8 = 0x95;

impl Pickle {
    fn read(bytes: &[u8]) -> Result<Self, String> {
        let mut input = Input { bytes, pos: 0 };
        let mut machine = Machine::default();
        loop {
            let at = input.pos;
            let Some(opcode) = input.next_byte() else {
                return Err("pickle ends without STOP".to_owned());
            };
            match opcode {
                PROTO => {
                    let protocol = input.byte()?;
                    if protocol > MAX_PROTOCOL {
                        return Err(format!("unsupported pickle protocol {protocol}"));
                    }
                }
                // Frames only help a reader buffer; the whole pickle is in memory already.
                FRAME => {
                    let frame_len = input.u64()?;
                    if frame_len > input.remaining() as u64 {
                        return Err(format!(
                            "frame of {frame_len} bytes at byte {at} runs past the end"
                        ));
                    }
                }
                SHORT_BINUNICODE => {
                    let len = usize::from(input.byte()?);
                    machine.push_str(input.take(len)?, at)?;
                }
                BINUNICODE => {
                    let len = input.u32()?;
                    machine.push_str(input.take_u64_len(len.into())?, at)?;
                }
                BINUNICODE8 => {
                    let len = input.u64()?;
                    machine.push_str(input.take_u64_len(len)?, at)?;
                }
                BININT => {
                    let value = i32::from_le_bytes(input.array()?);
                    machine.push_new(Object::Int(value.into()))?;
                }
                BININT1 => {
                    let value = input.byte()?;
                    machine.push_new(Object::Int(value.into()))?;
                }
                BININT2 => {
                    let value = u16::from_le_bytes(input.array()?);
                    machine.push_new(Object::Int(value.into()))?;
                }
                LONG1 => {
                    let len = usize::from(input.byte()?);
                    let value = long_from_le(input.take(len)?)?;
                    machine.push_new(Object::Int(value))?;
                }
                NONE => machine.push_new(Object::None)?,
                EMPTY_TUPLE => machine.push_new(Object::Tuple(Vec::new()))?,
                TUPLE1 | TUPLE2 | TUPLE3 => {
                    let count = usize::from(opcode - TUPLE1) + 1;
                    let items = machine.pop_n(count)?;
                    machine.push_new(Object::Tuple(items))?;
                }
                MARK => machine.mark()?,
                TUPLE => {
                    let items = machine.pop_to_mark()?;
                    machine.push_new(Object::Tuple(items))?;
                }
                EMPTY_DICT => machine.push_new(Object::Dict(Vec::new()))?,
                SETITEM => {
                    let value = machine.pop()?;
                    let key = machine.pop()?;
                    machine.add_to_dict(&[key, value])?;
                }
                SETITEMS => {
                    let items = machine.pop_to_mark()?;
                    if items.len() % 2 != 0 {
                        return Err(format!("SETITEMS at byte {at} has a key without a value"));
                    }
                    machine.add_to_dict(&items)?;
                }
                MEMOIZE => machine.memoize()?,
                BINGET => {
                    let index = usize::from(input.byte()?);
                    machine.get(index)?;
                }
                LONG_BINGET => {
                    let index = input.u32()?;
                    machine.get(usize::try_from(index).unwrap_or(usize::MAX))?;
                }
                STACK_GLOBAL => {
                    let name = machine.pop()?;
                    let module = machine.pop()?;
                    let (Object::Str(_), Object::Str(_)) =
                        (&machine.objects[module], &machine.objects[name])
                    else {
                        return Err(format!("STACK_GLOBAL at byte {at} needs two str"));
                    };
                    machine.push_new(Object::Global { module, name })?;
                }
                REDUCE | NEWOBJ => {
                    let args = machine.pop()?;
                    let callable = machine.pop()?;
                    if !matches!(machine.objects[args], Object::Tuple(_)) {
                        return Err(format!(
                            "{} at byte {at} needs an argument tuple",
                            opcode_name(opcode)
                        ));
                    }
                    let construction = if opcode == REDUCE {
                        Construction::Reduce
                    } else {
                        Construction::NewObj
                    };
                    machine.push_new(Object::Instance {
                        callable,
                        args,
                        construction,
                        state: None,
                    })?;
                }
                BUILD => {
                    let new_state = machine.pop()?;
                    let target = machine.top()?;
                    let Object::Instance {
                        state: state @ None,
                        ..
                    } = &mut machine.objects[target]
                    else {
                        return Err(format!("BUILD at byte {at} needs an object without state"));
                    };
                    *state = Some(new_state);
                }
                STOP => {
                    let root = machine.pop()?;
                    if !machine.stack.is_empty() || !machine.marks.is_empty() {
                        return Err("pickle leaves objects or marks behind at STOP".to_owned());
                    }
                    if input.remaining() > 0 {
                        return Err(format!("{} bytes follow STOP", input.remaining()));
                    }
                    return Ok(Pickle {
                        objects: machine.objects,
                        root,
                    });
                }
                other => {
                    return Err(format!(
                        "unsupported pickle opcode {} ({other:#04x}) at byte {at}",
                        opcode_name(other)
                    ));
                }
            }
        }
    }

    fn object(&self, id: ObjectId) -> &Object {
        &self.objects[id]
    }

    /// The object as a call of a global with a tuple of arguments, made the given way.
    fn call(&self, id: ObjectId, how: Construction) -> Option<Call<'_>> {
        let Object::Instance {
            callable,
            args,
            construction,
            state,
        } = self.object(id)
        else {
            return None;
        };
        let (Object::Global { module, name }, Object::Tuple(args)) =
            (self.object(*callable), self.object(*args))
        else {
            return None;
        };
        let (Object::Str(module), Object::Str(name)) = (self.object(*module), self.object(*name))
        else {
            return None;
        };
        (*construction == how).then_some(Call {
            module,
            name,
            args,
            state: *state,
        })
    }

    fn decimal_text(&self, id: ObjectId) -> Option<&str> {
        match self.call(id, Construction::Reduce)? {
            Call {
                module: "decimal",
                name: "Decimal",
                args: [text],
                state: None,
            } => match self.object(*text) {
                Object::Str(text) => Some(text),
                _ => None,
            },
            _ => None,
        }
    }

    /// The dict under key `"data"` of an instance state: `(dict_or_None, slots_dict)` or a dict.
    fn data_dict(&self, state: ObjectId) -> Option<&[(ObjectId, ObjectId)]> {
        let state_dicts: &[ObjectId] = match self.object(state) {
            Object::Tuple(parts) if parts.len() == 2 => parts,
            Object::Dict(_) => std::slice::from_ref(&state),
            _ => return None,
        };
        let mut found = None;
        for &part in state_dicts {
            match self.object(part) {
                Object::None => {}
                Object::Dict(entries) => {
                    for &(key, value) in entries {
                        if let Object::Str(key) = self.object(key)
                            && key == "data"
                            && let Object::Dict(data) = self.object(value)
                            && found.replace(data.as_slice()).is_some()
                        {
                            return None;
                        }
                    }
                }
                _ => return None,
            }
        }
        found
    }

    /// One line for an error message: a call with the kinds of its arguments, or a kind.
    fn describe(&self, id: ObjectId) -> String {
        match self.object(id) {
            Object::Instance {
                callable,
                args,
                construction,
                state,
            } => {
                let args = match self.object(*args) {
                    Object::Tuple(items) => items
                        .iter()
                        .map(|&item| self.kind(item))
                        .collect::<Vec<_>>()
                        .join(", "),
                    _ => self.kind(*args),
                };
                let new = if *construction == Construction::NewObj {
                    ".__new__"
                } else {
                    ""
                };
                let state = if state.is_some() { " with state" } else { "" };
                format!("{}{new}({args}){state}", self.kind(*callable))
            }
            _ => self.kind(id),
        }
    }

    /// What an object is, without looking inside (trees may have cycles).
    fn kind(&self, id: ObjectId) -> String {
        match self.object(id) {
            Object::None => "None".to_owned(),
            Object::Int(_) => "int".to_owned(),
            Object::Str(_) => "str".to_owned(),
            Object::Tuple(_) => "tuple".to_owned(),
            Object::Dict(_) => "dict".to_owned(),
            Object::Global { module, name } => {
                format!("{}.{}", self.short_text(*module), self.short_text(*name))
            }
            Object::Instance { .. } => "object".to_owned(),
        }
    }

    /// A string for an error message, cut after 64 characters.
    fn short_text(&self, id: ObjectId) -> &str {
        let Object::Str(text) = self.object(id) else {
            return "?";
        };
        text.char_indices()
            .nth(64)
            .map_or(text, |(end, _)| &text[..end])
    }
}

/// The stack machine's state; Python's unpickler keeps the same (stack, marks, memo).
#[derive(Default)]
struct Machine {
    objects: Vec<Object>,
    stack: Vec<ObjectId>,
    /// Stack lengths at each MARK; pops never reach below the last one.
    marks: Vec<usize>,
    memo: Vec<ObjectId>,
    dict_entries: usize,
}

impl Machine {
    fn push_new(&mut self, object: Object) -> Result<(), String> {
        if self.objects.len() + self.dict_entries >= MAX_TREE {
            return Err(format!("pickle builds more than {MAX_TREE} objects"));
        }
        self.objects.push(object);
        self.push(self.objects.len() - 1)
    }

    fn push(&mut self, id: ObjectId) -> Result<(), String> {
        if self.stack.len() >= MAX_STACK {
            return Err(format!("pickle stack grows beyond {MAX_STACK}"));
        }
        self.stack.push(id);
        Ok(())
    }

    fn push_str(&mut self, utf8: &[u8], at: usize) -> Result<(), String> {
        let text = std::str::from_utf8(utf8)
            .map_err(|err| format!("string at byte {at} is not UTF-8: {err}"))?;
        self.push_new(Object::Str(text.to_owned()))
    }

    fn floor(&self) -> usize {
        self.marks.last().copied().unwrap_or(0)
    }

    fn top(&self) -> Result<ObjectId, String> {
        match self.stack.last() {
            Some(&id) if self.stack.len() > self.floor() => Ok(id),
            _ => Err("pickle stack underflow".to_owned()),
        }
    }

    fn pop(&mut self) -> Result<ObjectId, String> {
        let id = self.top()?;
        self.stack.pop();
        Ok(id)
    }

    fn pop_n(&mut self, count: usize) -> Result<Vec<ObjectId>, String> {
        if self.stack.len() < self.floor() + count {
            return Err("pickle stack underflow".to_owned());
        }
        Ok(self.stack.split_off(self.stack.len() - count))
    }

    fn mark(&mut self) -> Result<(), String> {
        if self.marks.len() >= MAX_MARKS {
            return Err(format!("pickle nests more than {MAX_MARKS} marks"));
        }
        self.marks.push(self.stack.len());
        Ok(())
    }

    fn pop_to_mark(&mut self) -> Result<Vec<ObjectId>, String> {
        let floor = self.marks.pop().ok_or("pickle uses a mark it never set")?;
        Ok(self.stack.split_off(floor))
    }

    /// SETITEM and SETITEMS: key, value pairs into the dict on top of the stack.
    fn add_to_dict(&mut self, pairs: &[ObjectId]) -> Result<(), String> {
        self.dict_entries += pairs.len() / 2;
        if self.objects.len() + self.dict_entries > MAX_TREE {
            return Err(format!("pickle builds more than {MAX_TREE} objects"));
        }
        let target = self.top()?;
        let Object::Dict(entries) = &mut self.objects[target] else {
            return Err("SETITEM(S) needs a dict".to_owned());
        };
        entries.extend(pairs.chunks_exact(2).map(|pair| (pair[0], pair[1])));
        Ok(())
    }

    fn memoize(&mut self) -> Result<(), String> {
        if self.memo.len() >= MAX_MEMO {
            return Err(format!("pickle memo grows beyond {MAX_MEMO}"));
        }
        let top = self.top()?;
        self.memo.push(top);
        Ok(())
    }

    fn get(&mut self, index: usize) -> Result<(), String> {
        let id = *self
            .memo
            .get(index)
            .ok_or_else(|| format!("memo {index} was never set"))?;
        self.push(id)
    }
}

/// The pickle's bytes and a read position.
struct Input<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Input<'a> {
    fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    fn next_byte(&mut self) -> Option<u8> {
        let byte = *self.bytes.get(self.pos)?;
        self.pos += 1;
        Some(byte)
    }

    fn take(&mut self, len: usize) -> Result<&'a [u8], String> {
        if len > self.remaining() {
            return Err(format!(
                "pickle is cut short: {len} bytes wanted at byte {}",
                self.pos
            ));
        }
        let taken = &self.bytes[self.pos..self.pos + len];
        self.pos += len;
        Ok(taken)
    }

    fn take_u64_len(&mut self, len: u64) -> Result<&'a [u8], String> {
        self.take(usize::try_from(len).unwrap_or(usize::MAX))
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let mut array = [0; N];
        array.copy_from_slice(self.take(N)?);
        Ok(array)
    }

    fn byte(&mut self) -> Result<u8, String> {
        Ok(self.array::<1>()?[0])
    }

    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64, String> {
        Ok(u64::from_le_bytes(self.array()?))
    }
}

/// LONG1's little-endian two's complement; `i128` holds anything Backend.AI pickles.
fn long_from_le(bytes: &[u8]) -> Result<i128, String> {
    if bytes.len() > 16 {
        return Err(format!("integer of {} bytes is too large", bytes.len()));
    }
    let negative = bytes.last().is_some_and(|&last| last & 0x80 != 0);
    let mut full = [if negative { 0xff } else { 0 }; 16];
    full[..bytes.len()].copy_from_slice(bytes);
    Ok(i128::from_le_bytes(full))
}

/// A msgpack integer, which holds `i64::MIN..=u64::MAX`.
fn int_value(number: i128) -> Result<Value, String> {
    if let Ok(signed) = i64::try_from(number) {
        Ok(Value::from(signed))
    } else if let Ok(unsigned) = u64::try_from(number) {
        Ok(Value::from(unsigned))
    } else {
        Err(format!("integer {number} does not fit in msgpack"))
    }
}

/// Names for error messages, for every opcode up to protocol 5.
fn opcode_name(opcode: u8) -> &'static str {
    match opcode {
        b'(' => "MARK",
        b'.' => "STOP",
        b'0' => "POP",
        b'1' => "POP_MARK",
        b'2' => "DUP",
        b'F' => "FLOAT",
        b'I' => "INT",
        b'J' => "BININT",
        b'K' => "BININT1",
        b'L' => "LONG",
        b'M' => "BININT2",
        b'N' => "NONE",
        b'P' => "PERSID",
        b'Q' => "BINPERSID",
        b'R' => "REDUCE",
        b'S' => "STRING",
        b'T' => "BINSTRING",
        b'U' => "SHORT_BINSTRING",
        b'V' => "UNICODE",
        b'X' => "BINUNICODE",
        b'a' => "APPEND",
        b'b' => "BUILD",
        b'c' => "GLOBAL",
        b'd' => "DICT",
        b'}' => "EMPTY_DICT",
        b'e' => "APPENDS",
        b'g' => "GET",
        b'h' => "BINGET",
        b'i' => "INST",
        b'j' => "LONG_BINGET",
        b'l' => "LIST",
        b']' => "EMPTY_LIST",
        b'o' => "OBJ",
        b'p' => "PUT",
        b'q' => "BINPUT",
        b'r' => "LONG_BINPUT",
        b's' => "SETITEM",
        b't' => "TUPLE",
        b')' => "EMPTY_TUPLE",
        b'u' => "SETITEMS",
        b'G' => "BINFLOAT",
        b'B' => "BINBYTES",
        b'C' => "SHORT_BINBYTES",
        0x80 => "PROTO",
        0x81 => "NEWOBJ",
        0x82 => "EXT1",
        0x83 => "EXT2",
        0x84 => "EXT4",
        0x85 => "TUPLE1",
        0x86 => "TUPLE2",
        0x87 => "TUPLE3",
        0x88 => "NEWTRUE",
        0x89 => "NEWFALSE",
        0x8a => "LONG1",
        0x8b => "LONG4",
        0x8c => "SHORT_BINUNICODE",
        0x8d => "BINUNICODE8",
        0x8e => "BINBYTES8",
        0x8f => "EMPTY_SET",
        0x90 => "ADDITEMS",
        0x91 => "FROZENSET",
        0x92 => "NEWOBJ_EX",
        0x93 => "STACK_GLOBAL",
        0x94 => "MEMOIZE",
        0x95 => "FRAME",
        0x96 => "BYTEARRAY8",
        0x97 => "NEXT_BUFFER",
        0x98 => "READONLY_BUFFER",
        _ => "(not an opcode)",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SHORT_BINUNICODE of a string.
    fn text(value: &str) -> Vec<u8> {
        [&[SHORT_BINUNICODE, value.len() as u8][..], value.as_bytes()].concat()
    }

    /// PROTO 5, the parts, STOP.
    fn pickle(parts: &[&[u8]]) -> Vec<u8> {
        [&[PROTO, 5][..], &parts.concat(), &[STOP]].concat()
    }

    /// `module.name` pushed by STACK_GLOBAL.
    fn global(module: &str, name: &str) -> Vec<u8> {
        [text(module), text(name), vec![STACK_GLOBAL]].concat()
    }

    fn read_err(bytes: &[u8], fragment: &str) {
        let reason = Pickle::read(bytes).expect_err(fragment);
        assert!(reason.contains(fragment), "{fragment}: {reason}");
    }

    #[test]
    fn integers() {
        let enum_of =
            |int: &[u8]| enum_value(&pickle(&[&global("m", "E"), int, &[TUPLE1, REDUCE]]));
        assert_eq!(enum_of(&[BININT1, 200]), Ok(Value::from(200)));
        assert_eq!(enum_of(&[BININT2, 0x34, 0x12]), Ok(Value::from(0x1234)));
        assert_eq!(
            enum_of(&[BININT, 0xfe, 0xff, 0xff, 0xff]),
            Ok(Value::from(-2))
        );
        assert_eq!(enum_of(&[LONG1, 0]), Ok(Value::from(0)));
        assert_eq!(enum_of(&[LONG1, 1, 0xfb]), Ok(Value::from(-5)));
        let u64_max = [&[LONG1, 9][..], &[0xff; 8], &[0]].concat();
        assert_eq!(enum_of(&u64_max), Ok(Value::from(u64::MAX)));
        let two_to_64 = [&[LONG1, 9][..], &[0; 8], &[1]].concat();
        assert!(enum_of(&two_to_64).is_err_and(|reason| reason.contains("does not fit")));
        let huge = [&[LONG1, 17][..], &[1; 17]].concat();
        assert!(enum_of(&huge).is_err_and(|reason| reason.contains("17 bytes is too large")));
    }

    #[test]
    fn malformed_pickles_are_errors() {
        read_err(&[PROTO, 5], "ends without STOP");
        read_err(&[PROTO, 6, NONE, STOP], "unsupported pickle protocol 6");
        read_err(&pickle(&[&[NONE, NONE]]), "leaves objects or marks behind");
        read_err(&pickle(&[&[MARK, NONE]]), "leaves objects or marks behind");
        read_err(&[PROTO, 5, NONE, STOP, NONE], "1 bytes follow STOP");
        read_err(
            &pickle(&[&[FRAME, 100, 0, 0, 0, 0, 0, 0, 0, NONE]]),
            "runs past the end",
        );
        read_err(&pickle(&[&[SHORT_BINUNICODE, 5, b'a']]), "cut short");
        read_err(
            &pickle(&[&[BINUNICODE, 0xff, 0xff, 0xff, 0xff]]),
            "cut short",
        );
        read_err(&pickle(&[&[BINUNICODE8], &[0xff; 8]]), "cut short");
        read_err(&pickle(&[&[SHORT_BINUNICODE, 2, 0xc3, 0x28]]), "not UTF-8");
        read_err(&pickle(&[&[TUPLE1]]), "stack underflow");
        read_err(&pickle(&[&[NONE, MARK, TUPLE1]]), "stack underflow");
        read_err(&pickle(&[&[NONE, TUPLE]]), "never set");
        read_err(&pickle(&[&[NONE, BINGET, 3]]), "memo 3 was never set");
        read_err(&pickle(&[&[NONE, NONE, STACK_GLOBAL]]), "needs two str");
        read_err(
            &pickle(&[&global("m", "f"), &[NONE, REDUCE]]),
            "REDUCE at byte 10 needs an argument tuple",
        );
        read_err(&pickle(&[&[NONE, NONE, NONE, SETITEM]]), "needs a dict");
        read_err(
            &pickle(&[&[EMPTY_DICT, MARK, NONE, SETITEMS]]),
            "key without a value",
        );
        read_err(
            &pickle(&[&[NONE, EMPTY_DICT, BUILD]]),
            "needs an object without state",
        );
        let built_twice = [
            &global("m", "C")[..],
            &[EMPTY_TUPLE, NEWOBJ, NONE, BUILD, NONE, BUILD],
        ]
        .concat();
        read_err(&pickle(&[&built_twice]), "needs an object without state");
        // Protocol 2 writes GLOBAL, which Backend.AI's protocol 5 pickles never contain.
        read_err(
            &pickle(&[b"cdecimal\nDecimal\n"]),
            "unsupported pickle opcode GLOBAL (0x63) at byte 2",
        );
        read_err(&pickle(&[&[0xff]]), "(not an opcode) (0xff)");
    }

    #[test]
    fn bounds() {
        read_err(
            &pickle(&[&[NONE; MAX_STACK + 1]]),
            "stack grows beyond 4096",
        );
        read_err(
            &pickle(&[&[NONE], &[MEMOIZE; MAX_MEMO + 1]]),
            "memo grows beyond 4096",
        );
        read_err(&pickle(&[&[MARK; MAX_MARKS + 1]]), "more than 64 marks");
        // A dict grows by SETITEM of the same memoized None, then by new tuples of it: the stack
        // stays small, the tree does not.
        let entries = [BINGET, 0, BINGET, 0, SETITEM].repeat(MAX_TREE);
        read_err(
            &pickle(&[&[NONE, MEMOIZE, EMPTY_DICT], &entries]),
            "more than 65536 objects",
        );
        let tuples = [BINGET, 0, BINGET, 0, TUPLE2, NONE, SETITEM].repeat(MAX_TREE / 2);
        read_err(
            &pickle(&[&[NONE, MEMOIZE, EMPTY_DICT], &tuples]),
            "more than 65536 objects",
        );
    }

    /// A ResourceSlot whose state dict is its own `data`: the cycle ends in an error, not a loop.
    #[test]
    fn cycles_are_not_followed() {
        let slot = [
            &global("ai.backend.common.types", "ResourceSlot")[..],
            &[EMPTY_TUPLE, NEWOBJ, EMPTY_DICT, MEMOIZE],
            &text("data"),
            &[BINGET, 0, SETITEM, BUILD],
        ]
        .concat();
        let reason = resource_slot(&pickle(&[&slot])).expect_err("cycle");
        assert_eq!(reason, "slot \"data\" holds dict, not a Decimal");
    }

    #[test]
    fn resource_slot_values_and_names() {
        let slot = |entries: &[&[u8]]| {
            let state = [
                &[NONE, EMPTY_DICT][..],
                &text("data"),
                &[EMPTY_DICT, MARK],
                &entries.concat(),
                &[SETITEMS, SETITEM, TUPLE2],
            ]
            .concat();
            resource_slot(&pickle(&[
                &global("m", "ResourceSlot"),
                &[EMPTY_TUPLE, NEWOBJ],
                &state,
                &[BUILD],
            ]))
        };
        let decimal = [
            global("decimal", "Decimal"),
            text("1.5"),
            vec![TUPLE1, REDUCE],
        ]
        .concat();
        let expect = Value::Map(vec![
            (Value::from("cpu"), Value::from("2")),
            (Value::from("mem"), Value::from("1024")),
            (Value::from("x"), Value::from("1.5")),
        ]);
        assert_eq!(
            slot(&[
                &text("cpu"),
                &text("2"),
                &text("mem"),
                &[BININT2, 0, 4],
                &text("x"),
                &decimal
            ]),
            Ok(expect)
        );
        assert_eq!(slot(&[]), Ok(Value::Map(Vec::new())));
        assert_eq!(
            slot(&[&text("a"), &text("1"), &text("a"), &text("2")]),
            Err("slot \"a\" appears twice".to_owned())
        );
        assert_eq!(
            slot(&[&[NONE], &text("1")]),
            Err("slot name None is not a str".to_owned())
        );
        let not_decimal = [
            global("builtins", "float"),
            text("1.5"),
            vec![TUPLE1, REDUCE],
        ]
        .concat();
        assert_eq!(
            slot(&[&text("a"), &not_decimal]),
            Err("slot \"a\" holds builtins.float(str), not a Decimal".to_owned())
        );
    }

    #[test]
    fn long_names_are_cut_in_messages() {
        let module = "m".repeat(200);
        let reason = decimal(&pickle(&[
            &global(&module, "Decimal"),
            &text("1"),
            &[TUPLE1, REDUCE],
        ]))
        .expect_err("module");
        assert!(
            reason.ends_with(&format!("found {}.Decimal(str)", "m".repeat(64))),
            "{reason}"
        );
    }
}
