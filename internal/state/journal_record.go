package state

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

// A journal record is one small version, whole:
//
//	magic "LCJ1" | seq uint64 | name length uint16 | data length uint32 |
//	CRC-32C uint32 | name | data
//
// all big-endian. The CRC covers the header up to itself and the body, so
// a torn write, zeros or stale bytes from an earlier lap of the segment
// never decode as a record. data is the object exactly as a file holds it
// (payload and footer).
const (
	recordMagic     = "LCJ1"
	recordHeaderLen = 4 + 8 + 2 + 4 + 4
	crcOffset       = recordHeaderLen - 4
	maxRecordName   = 1024
	// maxRecordData bounds what a decoder allocates for garbage that looks
	// like a header: no small save comes near it.
	maxRecordData = 4 << 20
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// errBadRecord ends a journal's chain: what follows is not a record.
var errBadRecord = errors.New("not a journal record")

type record struct {
	seq  uint64
	name string
	data []byte
}

func recordLen(name string, data []byte) int64 {
	return int64(recordHeaderLen + len(name) + len(data))
}

// appendRecord encodes a record onto dst.
func appendRecord(dst []byte, seq uint64, name string, data []byte) []byte {
	start := len(dst)
	dst = append(dst, recordMagic...)
	dst = binary.BigEndian.AppendUint64(dst, seq)
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(name)))
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(data)))
	crc := crc32.Update(0, castagnoli, dst[start:])
	crc = crc32.Update(crc, castagnoli, []byte(name))
	crc = crc32.Update(crc, castagnoli, data)
	dst = binary.BigEndian.AppendUint32(dst, crc)
	dst = append(dst, name...)
	return append(dst, data...)
}

// parseRecordHeader checks a header's magic and bounds and returns the
// length of the body that follows it.
func parseRecordHeader(h []byte) (bodyLen int, err error) {
	if len(h) < recordHeaderLen || string(h[:4]) != recordMagic {
		return 0, errBadRecord
	}
	nameLen := int(binary.BigEndian.Uint16(h[12:14]))
	dataLen := int64(binary.BigEndian.Uint32(h[14:18]))
	if nameLen == 0 || nameLen > maxRecordName || dataLen > maxRecordData {
		return 0, fmt.Errorf("%w: lengths %d and %d", errBadRecord, nameLen, dataLen)
	}
	return nameLen + int(dataLen), nil
}

// decodeRecord decodes the record at the start of b and returns it with
// its encoded length. The record's data aliases b.
func decodeRecord(b []byte) (record, int, error) {
	bodyLen, err := parseRecordHeader(b)
	if err != nil {
		return record{}, 0, err
	}
	n := recordHeaderLen + bodyLen
	if len(b) < n {
		return record{}, 0, fmt.Errorf("%w: %d of %d bytes", errBadRecord, len(b), n)
	}
	crc := crc32.Update(0, castagnoli, b[:crcOffset])
	crc = crc32.Update(crc, castagnoli, b[recordHeaderLen:n])
	if crc != binary.BigEndian.Uint32(b[crcOffset:recordHeaderLen]) {
		return record{}, 0, fmt.Errorf("%w: checksum", errBadRecord)
	}
	nameLen := int(binary.BigEndian.Uint16(b[12:14]))
	return record{
		seq:  binary.BigEndian.Uint64(b[4:12]),
		name: string(b[recordHeaderLen : recordHeaderLen+nameLen]),
		data: b[recordHeaderLen+nameLen : n : n],
	}, n, nil
}
