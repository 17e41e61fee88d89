//! Frame and message decoding must never panic, whatever the bytes:
//! the first four bytes are a length checked against every cap, the rest a
//! body decoded as a message.
#![no_main]

use arca_shared::connection::{check_len, decode};
use arca_shared::limits::{CONTROL_FRAME_MAX, DATA_FRAME_MAX, HANDSHAKE_FRAME_MAX};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some((len, body)) = data.split_first_chunk::<4>() {
        let len = u32::from_be_bytes(*len) as usize;
        for cap in [HANDSHAKE_FRAME_MAX, CONTROL_FRAME_MAX, DATA_FRAME_MAX] {
            let _ = check_len(len, cap);
        }
        let _ = decode(body);
    }
    let _ = decode(data);
});
