//! Z85, ZeroMQ's binary-to-text encoding (RFC 32/Z85), as used for CURVE keys.
//!
//! Every 4 bytes, read as a big-endian `u32`, become 5 characters: base-85 digits, most
//! significant first, from a printable alphabet that avoids quotes and backslashes. Strict RFC
//! behaviour: no padding, so the input must be a whole number of groups. The `z85` crate on
//! crates.io adds its own padding scheme and is therefore not used.

use crate::error::RpcKeyError;

/// Encode `input` (a multiple of 4 bytes long) as Z85 text.
pub fn encode(input: impl AsRef<[u8]>) -> Result<String, RpcKeyError> {
    let input = input.as_ref();
    if input.len() % 4 != 0 {
        return Err(RpcKeyError::Z85Length {
            what: "input",
            len: input.len(),
            group: 4,
        });
    }
    Ok(encode_groups(input))
}

/// Decode Z85 text (a multiple of 5 characters long) back into bytes.
pub fn decode(input: impl AsRef<[u8]>) -> Result<Vec<u8>, RpcKeyError> {
    let input = input.as_ref();
    if input.len() % 5 != 0 {
        return Err(RpcKeyError::Z85Length {
            what: "text",
            len: input.len(),
            group: 5,
        });
    }
    let mut bytes = Vec::with_capacity(input.len() / 5 * 4);
    for (index, group) in input.chunks_exact(5).enumerate() {
        let start = index * 5;
        let mut value: u64 = 0;
        for (offset, &byte) in group.iter().enumerate() {
            let digit = DECODE[usize::from(byte)];
            if digit == INVALID {
                return Err(RpcKeyError::Z85Character {
                    position: start + offset,
                    byte,
                });
            }
            value = value * 85 + u64::from(digit);
        }
        // 85^5 > 2^32, so some groups (e.g. "%%%%%") name values no 4 bytes can hold.
        let value =
            u32::try_from(value).map_err(|_| RpcKeyError::Z85Overflow { position: start })?;
        bytes.extend_from_slice(&value.to_be_bytes());
    }
    Ok(bytes)
}

/// Encode the whole 4-byte groups of `input`; callers have checked that nothing is left over.
pub(crate) fn encode_groups(input: &[u8]) -> String {
    let mut text = String::with_capacity(input.len() / 4 * 5);
    for group in input.chunks_exact(4) {
        let mut value = u32::from_be_bytes([group[0], group[1], group[2], group[3]]);
        let mut digits = [0u8; 5];
        for digit in digits.iter_mut().rev() {
            *digit = ALPHABET[(value % 85) as usize];
            value /= 85;
        }
        text.extend(digits.iter().map(|&digit| char::from(digit)));
    }
    text
}

const ALPHABET: &[u8; 85] =
    b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#";

const INVALID: u8 = u8::MAX;

/// Digit value of each byte, `INVALID` for bytes outside the alphabet.
const DECODE: [u8; 256] = {
    let mut table = [INVALID; 256];
    let mut digit = 0;
    while digit < ALPHABET.len() {
        table[ALPHABET[digit] as usize] = digit as u8;
        digit += 1;
    }
    table
};

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of RFC 32.
    const RFC_BYTES: [u8; 8] = [0x86, 0x4F, 0xD2, 0x6F, 0xB5, 0x59, 0xF7, 0x5B];

    #[test]
    fn rfc_32_test_vector() {
        assert_eq!(encode(RFC_BYTES).unwrap(), "HelloWorld");
        assert_eq!(decode("HelloWorld").unwrap(), RFC_BYTES);
    }

    #[test]
    fn empty_input_is_empty_output() {
        assert_eq!(encode([]).unwrap(), "");
        assert_eq!(decode("").unwrap(), Vec::<u8>::new());
    }

    #[test]
    fn group_extremes() {
        assert_eq!(encode([0; 4]).unwrap(), "00000");
        assert_eq!(encode([0xFF; 4]).unwrap(), "%nSc0");
        assert_eq!(decode("%nSc0").unwrap(), [0xFF; 4]);
    }

    #[test]
    fn round_trips_every_byte_value() {
        let bytes: Vec<u8> = (0..=255).collect();
        let text = encode(&bytes).unwrap();
        assert_eq!(text.len(), 320);
        assert!(text.bytes().all(|byte| ALPHABET.contains(&byte)));
        assert_eq!(decode(&text).unwrap(), bytes);
    }

    #[test]
    fn every_character_decodes_to_its_index() {
        for (digit, &character) in ALPHABET.iter().enumerate() {
            let text = [b'0', b'0', b'0', b'0', character];
            assert_eq!(decode(text).unwrap(), (digit as u32).to_be_bytes());
        }
    }

    #[test]
    fn rejects_bad_lengths() {
        let error = encode([1, 2, 3]).unwrap_err();
        assert_eq!(
            error.to_string(),
            "Z85 input length 3 is not a multiple of 4"
        );
        let error = decode("Hello1").unwrap_err();
        assert_eq!(
            error.to_string(),
            "Z85 text length 6 is not a multiple of 5"
        );
    }

    #[test]
    fn rejects_bad_characters_with_their_position() {
        let error = decode("HelloWor\"d").unwrap_err();
        assert!(matches!(
            error,
            RpcKeyError::Z85Character {
                position: 8,
                byte: b'"'
            }
        ));
        assert_eq!(
            error.to_string(),
            "invalid Z85 character '\\\"' at position 8"
        );
        let error = decode(b"Hell\xC3World").unwrap_err();
        assert_eq!(
            error.to_string(),
            "invalid Z85 character '\\xc3' at position 4"
        );
        let error = decode("Hello Worl").unwrap_err();
        assert_eq!(error.to_string(), "invalid Z85 character ' ' at position 5");
    }

    #[test]
    fn rejects_groups_above_32_bits() {
        let error = decode("Hello%nSc1").unwrap_err();
        assert_eq!(
            error.to_string(),
            "Z85 group at position 5 encodes a value above 2^32 - 1"
        );
        assert!(decode("#####").is_err());
    }
}
