//! Callosum 1.0.3 RPC messages (`callosum/rpc/message.py`), as they travel in the last two frames
//! of `["UPPER", header, body]`.
//!
//! The header is plain msgpack, a map `{type, meth, okey, seq, zip}`. The body frame is plain
//! msgpack too, a map `{meta: bin, body: bin | nil}`: `meta` holds the message type's metadata
//! (empty for a request, `[]` for results and cancellations, `[exc_name, repr, traceback]` for
//! failures and errors), and `body`, for requests and results only, holds a value in Backend.AI's
//! msgpack flavour (`bai_events::codec`). A request's value is `{"args": [...], "kwargs": {...}}`,
//! as the reference manager's `PeerInvoker` sends it.
//!
//! We write what the manager writes (requests and cancellations) and read what an agent answers
//! (results, failures, errors, cancellations). For an agent's side (the simulator), the server
//! direction too: [`decode_request`] reads what a ROUTER receives and `encode_result`,
//! `encode_failure`, `encode_error`, `encode_cancelled` write the replies, echoing the request's
//! `meth`, `okey` (with its msgpack type) and `seq`. Compressed (`zip`) bodies are refused: no
//! Backend.AI peer ever sends one.

use bai_events::codec::{self, CodecError};
use rmpv::Value;

/// The message types of `RPCMessageTypes`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MessageType {
    Null = 0,
    /// A request.
    Function = 1,
    Result = 2,
    /// The agent's handler raised.
    Failure = 3,
    /// Callosum itself failed on the agent.
    Error = 4,
    /// The client gave up on a request (timeout or cancellation).
    Cancel = 5,
    /// The agent cancelled the request.
    Cancelled = 6,
}

impl MessageType {
    fn from_code(code: u64) -> Option<MessageType> {
        Some(match code {
            0 => MessageType::Null,
            1 => MessageType::Function,
            2 => MessageType::Result,
            3 => MessageType::Failure,
            4 => MessageType::Error,
            5 => MessageType::Cancel,
            6 => MessageType::Cancelled,
            _ => return None,
        })
    }
}

/// The two Callosum frames that follow `"UPPER"`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frames {
    pub header: Vec<u8>,
    pub body: Vec<u8>,
}

/// A decoded header. Replies echo the request's `meth`, `okey` and `seq`, by which a client
/// matches them to the request.
#[derive(Clone, Debug, PartialEq)]
pub struct Header {
    pub kind: MessageType,
    pub method: String,
    /// Echoed as it was sent, with its msgpack type: we always send the empty string.
    pub order_key: Value,
    pub seq: u32,
}

/// What an agent answered to a request.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// The handler's return value (`Nil` for `None`).
    Result(Value),
    Failure(ExceptionInfo),
    Error(ExceptionInfo),
    Cancelled,
}

/// The metadata of a FAILURE or ERROR: the Python exception raised on the agent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExceptionInfo {
    /// The exception's class name, e.g. `KeyError`.
    pub exc_name: String,
    /// `repr(exc)`.
    pub repr: String,
    /// The formatted traceback.
    pub traceback: String,
}

/// Why frames are not a Callosum reply.
#[derive(Debug, thiserror::Error)]
pub enum MessageError {
    #[error("malformed msgpack in the {part}: {source}")]
    Msgpack {
        part: &'static str,
        source: rmpv::decode::Error,
    },
    #[error("bytes follow the msgpack value of the {0}")]
    TrailingBytes(&'static str),
    #[error("the {0} is not a msgpack map")]
    NotAMap(&'static str),
    #[error("the {part} has no {field:?} of the right type")]
    BadField {
        part: &'static str,
        field: &'static str,
    },
    #[error("unknown message type {0}")]
    UnknownType(u64),
    #[error("a {0:?} message is not a reply")]
    NotAReply(MessageType),
    #[error("a {0:?} message is not a request")]
    NotARequest(MessageType),
    #[error("the body is compressed (snappy), which no Backend.AI peer sends")]
    Compressed,
    #[error("the error metadata is not [name, repr, traceback]")]
    BadErrorMeta,
    #[error("the returned value: {0}")]
    Value(#[from] CodecError),
}

/// A request (FUNCTION) for `method(*args, **kwargs)` with sequence number `seq`.
pub fn encode_function(
    method: &str,
    seq: u32,
    args: Vec<Value>,
    kwargs: Vec<(String, Value)>,
) -> Frames {
    let kwargs = kwargs
        .into_iter()
        .map(|(name, value)| (Value::from(name), value))
        .collect();
    let request = Value::Map(vec![
        (Value::from("args"), Value::Array(args)),
        (Value::from("kwargs"), Value::Map(kwargs)),
    ]);
    Frames {
        header: header(MessageType::Function, method, seq),
        // A request has no metadata: Callosum writes empty bytes.
        body: body(Vec::new(), Some(codec::encode(&request))),
    }
}

/// The cancellation (CANCEL) of the request `(method, "", seq)`.
pub fn encode_cancel(method: &str, seq: u32) -> Frames {
    Frames {
        header: header(MessageType::Cancel, method, seq),
        body: body(EMPTY_ARRAY.to_vec(), None),
    }
}

/// Reads a header frame.
pub fn decode_header(bytes: &[u8]) -> Result<Header, MessageError> {
    const PART: &str = "header";
    let fields = read_map(bytes, PART)?;
    let code = field(&fields, PART, "type")?
        .as_u64()
        .ok_or(MessageError::BadField {
            part: PART,
            field: "type",
        })?;
    let kind = MessageType::from_code(code).ok_or(MessageError::UnknownType(code))?;
    let method = field(&fields, PART, "meth")?
        .as_str()
        .ok_or(MessageError::BadField {
            part: PART,
            field: "meth",
        })?
        .to_owned();
    let order_key = field(&fields, PART, "okey")?.clone();
    let seq = field(&fields, PART, "seq")?
        .as_u64()
        .and_then(|seq| u32::try_from(seq).ok())
        .ok_or(MessageError::BadField {
            part: PART,
            field: "seq",
        })?;
    let zip = field(&fields, PART, "zip")?
        .as_bool()
        .ok_or(MessageError::BadField {
            part: PART,
            field: "zip",
        })?;
    if zip {
        return Err(MessageError::Compressed);
    }
    Ok(Header {
        kind,
        method,
        order_key,
        seq,
    })
}

/// Reads the body frame of a reply of type `kind`.
pub fn decode_reply_body(kind: MessageType, bytes: &[u8]) -> Result<Outcome, MessageError> {
    const PART: &str = "body";
    let fields = read_map(bytes, PART)?;
    match kind {
        MessageType::Result => {
            let value = match field(&fields, PART, "body")? {
                Value::Binary(value) => codec::decode(value)?,
                _ => {
                    return Err(MessageError::BadField {
                        part: PART,
                        field: "body",
                    });
                }
            };
            Ok(Outcome::Result(value))
        }
        MessageType::Failure => Ok(Outcome::Failure(exception(&fields)?)),
        MessageType::Error => Ok(Outcome::Error(exception(&fields)?)),
        MessageType::Cancelled => Ok(Outcome::Cancelled),
        other => Err(MessageError::NotAReply(other)),
    }
}

/// Reads a reply: its header and what it says.
pub fn decode_reply(header: &[u8], body: &[u8]) -> Result<(Header, Outcome), MessageError> {
    let header = decode_header(header)?;
    let outcome = decode_reply_body(header.kind, body)?;
    Ok((header, outcome))
}

/// The first frame of a handshake request, its answer, and of every RPC message.
pub const PING: &[u8] = b"PING";
pub const PONG: &[u8] = b"PONG";
pub const UPPER: &[u8] = b"UPPER";

/// What a client asks of an agent.
#[derive(Clone, Debug, PartialEq)]
pub enum Request {
    /// `method(*args, **kwargs)`; a request without a body has no arguments.
    Function {
        header: Header,
        args: Vec<Value>,
        kwargs: Vec<(String, Value)>,
    },
    /// The client gave up on the request `header` names (by `meth`, `okey`, `seq`).
    Cancel { header: Header },
}

/// Reads a request (FUNCTION or CANCEL) from the header and body frames a ROUTER receives after
/// the peer's routing id and `"UPPER"`.
pub fn decode_request(header: &[u8], body: &[u8]) -> Result<Request, MessageError> {
    const PART: &str = "request";
    let header = decode_header(header)?;
    match header.kind {
        MessageType::Cancel => Ok(Request::Cancel { header }),
        MessageType::Function => {
            let fields = read_map(body, "body")?;
            let request = match field(&fields, "body", "body")? {
                Value::Nil => Value::Nil,
                Value::Binary(bytes) if bytes.is_empty() => Value::Nil,
                Value::Binary(bytes) => codec::decode(bytes)?,
                _ => {
                    return Err(MessageError::BadField {
                        part: "body",
                        field: "body",
                    });
                }
            };
            let (mut args, mut kwargs) = (Vec::new(), Vec::new());
            match request {
                Value::Nil => {}
                Value::Map(entries) => {
                    for (key, value) in entries {
                        match (key.as_str(), value) {
                            (Some("args"), Value::Array(items)) => args = items,
                            (Some("args"), Value::Nil) => {}
                            (Some("kwargs"), Value::Map(items)) => {
                                for (name, value) in items {
                                    let name = name.as_str().ok_or(MessageError::BadField {
                                        part: PART,
                                        field: "kwargs",
                                    })?;
                                    kwargs.push((name.to_owned(), value));
                                }
                            }
                            (Some("kwargs"), Value::Nil) => {}
                            (Some("args"), _) => {
                                return Err(MessageError::BadField {
                                    part: PART,
                                    field: "args",
                                });
                            }
                            (Some("kwargs"), _) => {
                                return Err(MessageError::BadField {
                                    part: PART,
                                    field: "kwargs",
                                });
                            }
                            _ => {}
                        }
                    }
                }
                _ => return Err(MessageError::NotAMap(PART)),
            }
            Ok(Request::Function {
                header,
                args,
                kwargs,
            })
        }
        other => Err(MessageError::NotARequest(other)),
    }
}

/// The RESULT of the request `request`: its handler returned `value` (`Nil` for `None`).
pub fn encode_result(request: &Header, value: &Value) -> Frames {
    Frames {
        header: reply_header(MessageType::Result, request),
        body: body(EMPTY_ARRAY.to_vec(), Some(codec::encode(value))),
    }
}

/// The FAILURE of the request `request`: its handler raised `exception`.
pub fn encode_failure(request: &Header, exception: &ExceptionInfo) -> Frames {
    exception_reply(MessageType::Failure, request, exception)
}

/// The ERROR of the request `request`: the RPC layer failed (e.g. an unknown method).
pub fn encode_error(request: &Header, exception: &ExceptionInfo) -> Frames {
    exception_reply(MessageType::Error, request, exception)
}

/// The CANCELLED answer to the request `request`, after its client cancelled it.
pub fn encode_cancelled(request: &Header) -> Frames {
    Frames {
        header: reply_header(MessageType::Cancelled, request),
        body: body(EMPTY_ARRAY.to_vec(), None),
    }
}

/// The answer to a handshake `["PING", a, b]` (without the ROUTER's routing id): `["PONG", a, b]`;
/// `None` when `frames` is not a PING.
pub fn pong(frames: &[Vec<u8>]) -> Option<[Vec<u8>; 3]> {
    match frames {
        [kind, first, second] if kind == PING => {
            Some([PONG.to_vec(), first.clone(), second.clone()])
        }
        _ => None,
    }
}

fn exception_reply(kind: MessageType, request: &Header, exception: &ExceptionInfo) -> Frames {
    let meta = codec::encode(&Value::Array(vec![
        Value::from(exception.exc_name.as_str()),
        Value::from(exception.repr.as_str()),
        Value::from(exception.traceback.as_str()),
    ]));
    Frames {
        header: reply_header(kind, request),
        body: body(meta, None),
    }
}

fn reply_header(kind: MessageType, request: &Header) -> Vec<u8> {
    codec::encode(&Value::Map(vec![
        (Value::from("type"), Value::from(kind as u8)),
        (Value::from("meth"), Value::from(request.method.as_str())),
        (Value::from("okey"), request.order_key.clone()),
        (Value::from("seq"), Value::from(request.seq)),
        (Value::from("zip"), Value::from(false)),
    ]))
}

/// msgpack `[]`, the metadata of results and cancellations.
const EMPTY_ARRAY: [u8; 1] = [0x90];

fn header(kind: MessageType, method: &str, seq: u32) -> Vec<u8> {
    // The key order of Callosum's dict, so that our frames are byte for byte the reference's.
    codec::encode(&Value::Map(vec![
        (Value::from("type"), Value::from(kind as u8)),
        (Value::from("meth"), Value::from(method)),
        (Value::from("okey"), Value::from("")),
        (Value::from("seq"), Value::from(seq)),
        (Value::from("zip"), Value::from(false)),
    ]))
}

fn body(meta: Vec<u8>, body: Option<Vec<u8>>) -> Vec<u8> {
    codec::encode(&Value::Map(vec![
        (Value::from("meta"), Value::Binary(meta)),
        (Value::from("body"), body.map_or(Value::Nil, Value::Binary)),
    ]))
}

fn read_map(bytes: &[u8], part: &'static str) -> Result<Vec<(Value, Value)>, MessageError> {
    let mut rest = bytes;
    let value = rmpv::decode::read_value_with_max_depth(&mut rest, MAX_DEPTH)
        .map_err(|source| MessageError::Msgpack { part, source })?;
    if !rest.is_empty() {
        return Err(MessageError::TrailingBytes(part));
    }
    match value {
        Value::Map(fields) => Ok(fields),
        _ => Err(MessageError::NotAMap(part)),
    }
}

fn field<'a>(
    fields: &'a [(Value, Value)],
    part: &'static str,
    name: &'static str,
) -> Result<&'a Value, MessageError> {
    fields
        .iter()
        .find(|(key, _)| key.as_str() == Some(name))
        .map(|(_, value)| value)
        .ok_or(MessageError::BadField { part, field: name })
}

fn exception(fields: &[(Value, Value)]) -> Result<ExceptionInfo, MessageError> {
    let Value::Binary(meta) = field(fields, "body", "meta")? else {
        return Err(MessageError::BadErrorMeta);
    };
    let mut rest = meta.as_slice();
    let value =
        rmpv::decode::read_value_with_max_depth(&mut rest, MAX_DEPTH).map_err(|source| {
            MessageError::Msgpack {
                part: "error metadata",
                source,
            }
        })?;
    let Value::Array(items) = value else {
        return Err(MessageError::BadErrorMeta);
    };
    match items.as_slice() {
        [name, repr, traceback] => {
            let text = |value: &Value| {
                value
                    .as_str()
                    .map(str::to_owned)
                    .ok_or(MessageError::BadErrorMeta)
            };
            Ok(ExceptionInfo {
                exc_name: text(name)?,
                repr: text(repr)?,
                traceback: text(traceback)?,
            })
        }
        _ => Err(MessageError::BadErrorMeta),
    }
}

/// Headers and error metadata are flat; the returned value is bounded by `bai_events::codec`.
const MAX_DEPTH: usize = 32;

#[cfg(test)]
mod tests {
    //! The hex vectors were written by Callosum 1.0.3 itself (`.venvs/agent`):
    //! `RPCMessage(...).encode(ai.backend.common.msgpack.packb)`.

    use super::*;

    fn unhex(text: &str) -> Vec<u8> {
        hex::decode(text).expect("hex")
    }

    const PING_HEADER: &str = "85a47479706501a46d657468a470696e67a46f6b6579a0a373657100a37a6970c2";
    const DESTROY_HEADER: &str = "85a47479706501a46d657468ae64657374726f795f6b65726e656ca46f6b6579a0a3736571ceffffffffa37a6970c2";

    #[test]
    fn a_request_is_what_callosum_writes() {
        let frames = encode_function("ping", 0, vec![Value::from("hello")], vec![]);
        assert_eq!(frames.header, unhex(PING_HEADER));
        assert_eq!(
            frames.body,
            unhex("82a46d657461c400a4626f6479c41582a46172677391a568656c6c6fa66b776172677380")
        );

        let frames = encode_function(
            "destroy_kernel",
            u32::MAX,
            vec![Value::from("k1"), Value::from("s1"), Value::Nil],
            vec![("suppress_events".to_owned(), Value::from(true))],
        );
        assert_eq!(frames.header, unhex(DESTROY_HEADER));
        assert_eq!(
            frames.body,
            unhex(
                "82a46d657461c400a4626f6479c42782a46172677393a26b31a27331c0a66b776172677381\
                 af73757070726573735f6576656e7473c3"
            )
        );
    }

    #[test]
    fn a_cancellation_is_what_callosum_writes() {
        let frames = encode_cancel("destroy_kernel", u32::MAX);
        assert_eq!(
            frames.header,
            unhex(&DESTROY_HEADER.replace("a47479706501", "a47479706505"))
        );
        assert_eq!(frames.body, unhex("82a46d657461c40190a4626f6479c0"));
    }

    #[test]
    fn results_are_read_with_their_header() {
        let header = PING_HEADER.replace("a47479706501", "a47479706502");
        let (header, outcome) = decode_reply(
            &unhex(&header),
            &unhex("82a46d657461c40190a4626f6479c406a568656c6c6f"),
        )
        .expect("reply");
        assert_eq!(
            header,
            Header {
                kind: MessageType::Result,
                method: "ping".to_owned(),
                order_key: Value::from(""),
                seq: 0,
            }
        );
        assert_eq!(outcome, Outcome::Result(Value::from("hello")));

        let outcome = decode_reply_body(
            MessageType::Result,
            &unhex(
                "82a46d657461c40190a4626f6479c42082a56167656e7481b161627573652d7265706f72742d\
                 70617468c0a16ecd012c",
            ),
        )
        .expect("reply");
        let expected = Value::Map(vec![
            (
                Value::from("agent"),
                Value::Map(vec![(Value::from("abuse-report-path"), Value::Nil)]),
            ),
            (Value::from("n"), Value::from(300)),
        ]);
        assert_eq!(outcome, Outcome::Result(expected));
    }

    #[test]
    fn failures_carry_the_exception() {
        let header = PING_HEADER.replace("a47479706501", "a47479706503");
        let body = "82a46d657461c4a193aa56616c75654572726f72b256616c75654572726f722827626f6f6d2729\
                    d98054726163656261636b20286d6f737420726563656e742063616c6c206c617374293a0a20\
                    2046696c6520222f746d702f7665632f67656e2e7079222c206c696e652031392c20696e203c\
                    6d6f64756c653e0a2020202072616973652056616c75654572726f722822626f6f6d22290a56\
                    616c75654572726f723a20626f6f6d0aa4626f6479c0";
        let (header, outcome) = decode_reply(&unhex(&header), &unhex(body)).expect("reply");
        assert_eq!(header.kind, MessageType::Failure);
        assert_eq!(
            outcome,
            Outcome::Failure(ExceptionInfo {
                exc_name: "ValueError".to_owned(),
                repr: "ValueError('boom')".to_owned(),
                traceback: "Traceback (most recent call last):\n  File \"/tmp/vec/gen.py\", \
                            line 19, in <module>\n    raise ValueError(\"boom\")\n\
                            ValueError: boom\n"
                    .to_owned(),
            })
        );
    }

    #[test]
    fn cancellations_by_the_agent_are_read() {
        let header = PING_HEADER.replace("a47479706501", "a47479706506");
        let (header, outcome) =
            decode_reply(&unhex(&header), &unhex("82a46d657461c40190a4626f6479c0")).expect("reply");
        assert_eq!(header.kind, MessageType::Cancelled);
        assert_eq!(outcome, Outcome::Cancelled);
    }

    #[test]
    fn what_is_not_a_reply_is_refused() {
        let request = encode_function("ping", 0, vec![], vec![]);
        assert!(matches!(
            decode_reply(&request.header, &request.body),
            Err(MessageError::NotAReply(MessageType::Function))
        ));
        let zipped = PING_HEADER.replace("a37a6970c2", "a37a6970c3");
        assert!(matches!(
            decode_header(&unhex(&zipped)),
            Err(MessageError::Compressed)
        ));
        let unknown = PING_HEADER.replace("a47479706501", "a47479706509");
        assert!(matches!(
            decode_header(&unhex(&unknown)),
            Err(MessageError::UnknownType(9))
        ));
        assert!(matches!(
            decode_header(&[0x90]),
            Err(MessageError::NotAMap("header"))
        ));
        assert!(matches!(
            decode_reply_body(
                MessageType::Failure,
                &unhex("82a46d657461c40190a4626f6479c0")
            ),
            Err(MessageError::BadErrorMeta)
        ));
    }

    #[test]
    fn requests_are_read_as_an_agent_reads_them() {
        let frames = encode_function(
            "destroy_kernel",
            7,
            vec![Value::from("k1"), Value::from("s1"), Value::Nil],
            vec![("suppress_events".to_owned(), Value::from(true))],
        );
        let request = decode_request(&frames.header, &frames.body).expect("request");
        let Request::Function {
            header,
            args,
            kwargs,
        } = request
        else {
            panic!("not a function: {request:?}");
        };
        assert_eq!(header.method, "destroy_kernel");
        assert_eq!(header.seq, 7);
        assert_eq!(header.order_key, Value::from(""));
        assert_eq!(args, vec![Value::from("k1"), Value::from("s1"), Value::Nil]);
        assert_eq!(
            kwargs,
            vec![("suppress_events".to_owned(), Value::from(true))]
        );

        let frames = encode_cancel("ping", 3);
        let request = decode_request(&frames.header, &frames.body).expect("cancel");
        assert!(matches!(request, Request::Cancel { header } if header.seq == 3));

        // A nil body means no arguments; a reply is not a request.
        let nil_body = unhex("82a46d657461c400a4626f6479c0");
        let request = decode_request(&unhex(PING_HEADER), &nil_body).expect("no args");
        assert!(
            matches!(request, Request::Function { args, kwargs, .. } if args.is_empty() && kwargs.is_empty())
        );
        let result = PING_HEADER.replace("a47479706501", "a47479706502");
        assert!(matches!(
            decode_request(&unhex(&result), &nil_body),
            Err(MessageError::NotARequest(MessageType::Result))
        ));
    }

    #[test]
    fn replies_are_what_callosum_writes_and_the_client_reads() {
        let request = decode_header(&unhex(PING_HEADER)).expect("header");
        let frames = encode_result(&request, &Value::from("hello"));
        assert_eq!(
            frames.header,
            unhex(&PING_HEADER.replace("a47479706501", "a47479706502"))
        );
        assert_eq!(
            frames.body,
            unhex("82a46d657461c40190a4626f6479c406a568656c6c6f")
        );
        let cancelled = encode_cancelled(&request);
        assert_eq!(
            cancelled.header,
            unhex(&PING_HEADER.replace("a47479706501", "a47479706506"))
        );
        assert_eq!(cancelled.body, unhex("82a46d657461c40190a4626f6479c0"));
        let info = ExceptionInfo {
            exc_name: "ValueError".to_owned(),
            repr: "ValueError('boom')".to_owned(),
            traceback: "Traceback (most recent call last):\n  File \"/tmp/vec/gen.py\", \
                        line 19, in <module>\n    raise ValueError(\"boom\")\n\
                        ValueError: boom\n"
                .to_owned(),
        };
        let failure = encode_failure(&request, &info);
        assert_eq!(
            failure.body,
            unhex(
                "82a46d657461c4a193aa56616c75654572726f72b256616c75654572726f722827626f6f6d2729\
                 d98054726163656261636b20286d6f737420726563656e742063616c6c206c617374293a0a20\
                 2046696c6520222f746d702f7665632f67656e2e7079222c206c696e652031392c20696e203c\
                 6d6f64756c653e0a2020202072616973652056616c75654572726f722822626f6f6d22290a56\
                 616c75654572726f723a20626f6f6d0aa4626f6479c0"
            )
        );
        let (header, outcome) = decode_reply(&failure.header, &failure.body).expect("failure");
        assert_eq!(header.kind, MessageType::Failure);
        assert_eq!(outcome, Outcome::Failure(info.clone()));
        let error = encode_error(&request, &info);
        assert_eq!(
            decode_reply(&error.header, &error.body).expect("error").1,
            Outcome::Error(info)
        );

        // The order key is echoed with its msgpack type (bin stays bin).
        let raw = Header {
            order_key: Value::Binary(Vec::new()),
            ..request
        };
        let frames = encode_result(&raw, &Value::Nil);
        assert_eq!(
            decode_header(&frames.header).expect("header").order_key,
            Value::Binary(Vec::new())
        );

        let ping = vec![PING.to_vec(), b"a".to_vec(), Vec::new()];
        assert_eq!(
            pong(&ping),
            Some([PONG.to_vec(), b"a".to_vec(), Vec::new()])
        );
        assert_eq!(pong(&ping[..2]), None);
    }
}
