//! The CDR reader and writer on bytes laid out by hand.

use super::*;

/// Little-endian bytes laid out by hand: u8 at 0, u32 aligned to 4, f64
/// aligned to 8 (offsets after the header), string with its NUL.
const HAND: [u8; 32] = [
    0x00, 0x01, 0x00, 0x00, // header
    0x07, 0, 0, 0, // u8 7 + 3 padding
    0x2a, 0, 0, 0, // u32 42 at 4
    0, 0, 0, 0, 0, 0, 0xf8, 0x3f, // f64 1.5 at 8
    3, 0, 0, 0, b'a', b'b', 0, // string "ab" at 16
    0, // padding to 24
    1, 0, 0, 0, // f64[] of 1 at 24, element at 32 ...
];

#[test]
fn reads_and_writes_hand_laid_bytes() {
    let mut w = CdrWriter::new();
    w.write_u8(7);
    w.write_u32(42);
    w.write_f64(1.5);
    w.write_string("s", "ab").unwrap();
    w.write_f64_seq("v", &[-2.0]).unwrap();
    let bytes = w.into_bytes();
    assert_eq!(&bytes[..HAND.len()], &HAND);
    // 4 bytes of padding, then -2.0.
    assert_eq!(
        &bytes[HAND.len()..],
        &[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xc0]
    );

    let mut r = CdrReader::new(&bytes).unwrap();
    assert_eq!(r.read_u8("a").unwrap(), 7);
    assert_eq!(r.read_u32("b").unwrap(), 42);
    assert_eq!(r.read_f64("c").unwrap(), 1.5);
    assert_eq!(r.read_string("s").unwrap(), "ab");
    assert_eq!(r.read_f64_seq("v").unwrap(), vec![-2.0]);
    r.finish().unwrap();
}

#[test]
fn reads_big_endian() {
    let bytes = [
        0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0,
    ];
    let mut r = CdrReader::new(&bytes).unwrap();
    assert!(r.is_big_endian());
    assert_eq!(r.read_u32("n").unwrap(), 2);
    assert_eq!(r.read_f64("x").unwrap(), 1.5);
}

#[test]
fn empty_sequences_are_not_aligned() {
    let mut w = CdrWriter::new();
    w.write_u8(1);
    w.write_f64_seq("v", &[]).unwrap();
    w.write_u8(2);
    assert_eq!(w.into_bytes(), [0, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 2]);
}

#[test]
fn errors_name_field_offset_and_problem() {
    // A count of 2^31 floats in a 12-byte payload.
    let bytes = [0, 1, 0, 0, 0, 0, 0, 0x80, 0, 0, 0, 0];
    let mut r = CdrReader::new(&bytes).unwrap();
    let e = r.read_f64_seq("position").unwrap_err();
    assert_eq!(e.field, "position");
    assert_eq!(e.offset, 4);
    assert!(
        matches!(
            e.problem,
            CdrProblem::CountTooLarge {
                count: 0x8000_0000,
                left: 4,
                ..
            }
        ),
        "{e}"
    );

    // Element errors carry their index, nested ones their parent.
    let bytes = [
        0, 1, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 0, 9, 9, 9, 2, 0, 0, 0, b'x', 1,
    ];
    let mut r = CdrReader::new(&bytes).unwrap();
    let e = r
        .read_struct("header", |r| r.read_string_seq("name"))
        .unwrap_err();
    assert_eq!(e.field, "header.name[1]");
    assert_eq!(e.offset, 20);
    assert_eq!(e.problem, CdrProblem::MissingNul);
    assert!(e.to_string().contains("`header.name[1]` at byte 20"), "{e}");

    let e = CdrReader::new(&[0, 2, 0, 0]).unwrap_err();
    assert_eq!(e.problem, CdrProblem::Encapsulation { id: [0, 2] });
    let e = CdrReader::new(&[0, 1]).unwrap_err();
    assert!(matches!(
        e.problem,
        CdrProblem::Truncated { needed: 4, left: 2 }
    ));

    let mut r = CdrReader::new(&[0, 1, 0, 0, 1, 2, 3]).unwrap();
    let e = r.read_u32("n").unwrap_err();
    assert_eq!(e.problem, CdrProblem::Truncated { needed: 4, left: 3 });
    let r = CdrReader::new(&[0, 1, 0, 0, 1, 2, 3]).unwrap();
    r.finish().unwrap();
    let r = CdrReader::new(&[0, 1, 0, 0, 1, 2, 3, 4]).unwrap();
    assert_eq!(
        r.finish().unwrap_err().problem,
        CdrProblem::TrailingBytes { extra: 4 }
    );
}

#[test]
fn strings_check_nul_and_utf8() {
    let mut r = CdrReader::new(&[0, 1, 0, 0, 0, 0, 0, 0]).unwrap();
    assert_eq!(r.read_string("s").unwrap(), "");
    let mut r = CdrReader::new(&[0, 1, 0, 0, 2, 0, 0, 0, 0xff, 0]).unwrap();
    assert_eq!(r.read_string("s").unwrap_err().problem, CdrProblem::NotUtf8);
    let mut r = CdrReader::new(&[0, 1, 0, 0, 3, 0, 0, 0, b'a', 0, 0]).unwrap();
    assert_eq!(
        r.read_string("s").unwrap_err().problem,
        CdrProblem::InteriorNul
    );
    let mut w = CdrWriter::new();
    let e = w.write_string("frame_id", "a\0b").unwrap_err();
    assert_eq!(
        (e.field.as_str(), e.problem),
        ("frame_id", CdrProblem::InteriorNul)
    );
}
