//! What the fuzz targets share.

/// The file bytes of an input `mode | bytes`, for a format that ends in an 8-byte trailer:
/// the CRC-32 of everything before it (u32 LE), then a 4-byte end mark (a snapshot, a cold
/// set). With mode bit 0 set, the right CRC-32 is written into the trailer first, so that the
/// fuzzer reaches the structure behind the checksum. `None` for an empty input.
pub fn with_trailer_crc(data: &[u8]) -> Option<Vec<u8>> {
    let (&mode, bytes) = data.split_first()?;
    let mut bytes = bytes.to_vec();
    if mode & 1 != 0 && bytes.len() >= 8 {
        let body = bytes.len() - 8;
        let crc = crc32fast::hash(&bytes[..body]).to_le_bytes();
        bytes[body..body + 4].copy_from_slice(&crc);
    }
    Some(bytes)
}
