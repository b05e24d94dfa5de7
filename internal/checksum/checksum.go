// Package checksum computes OTA package checksums exactly as ThingsBoard
// writes them in fw_checksum / sw_checksum, for the client (tb) and the
// endpoint (tb/tbsim) alike.
//
// ThingsBoard hashes with Guava and stores HashCode.toString(): lowercase
// hex of the hash bytes. For the 32-bit hashes (CRC32, MURMUR3_32) those
// bytes are the little-endian bytes of the int; MURMUR3_128 is the two
// 64-bit halves of MurmurHash3_x64_128, each little-endian.
package checksum

import (
	"crypto/md5"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash/crc32"
	"strings"

	"github.com/twmb/murmur3"
)

// Algorithms are the algorithms ThingsBoard offers for OTA packages.
var Algorithms = []string{"MD5", "SHA256", "SHA384", "SHA512", "CRC32", "MURMUR3_32", "MURMUR3_128"}

// Compute returns data's checksum with algorithm (case-insensitive).
func Compute(algorithm string, data []byte) (string, error) {
	switch strings.ToUpper(algorithm) {
	case "MD5":
		s := md5.Sum(data)
		return hex.EncodeToString(s[:]), nil
	case "SHA256":
		s := sha256.Sum256(data)
		return hex.EncodeToString(s[:]), nil
	case "SHA384":
		s := sha512.Sum384(data)
		return hex.EncodeToString(s[:]), nil
	case "SHA512":
		s := sha512.Sum512(data)
		return hex.EncodeToString(s[:]), nil
	case "CRC32":
		return le32(crc32.ChecksumIEEE(data)), nil
	case "MURMUR3_32":
		return le32(murmur3.Sum32(data)), nil
	case "MURMUR3_128":
		h1, h2 := murmur3.Sum128(data)
		var b [16]byte
		binary.LittleEndian.PutUint64(b[:8], h1)
		binary.LittleEndian.PutUint64(b[8:], h2)
		return hex.EncodeToString(b[:]), nil
	}
	return "", fmt.Errorf("unknown checksum algorithm %q (want one of %s)", algorithm, strings.Join(Algorithms, ", "))
}

func le32(v uint32) string {
	var b [4]byte
	binary.LittleEndian.PutUint32(b[:], v)
	return hex.EncodeToString(b[:])
}
