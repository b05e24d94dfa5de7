package tb

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

// ChecksumAlgorithms are the algorithms ThingsBoard offers for OTA packages.
var ChecksumAlgorithms = []string{"MD5", "SHA256", "SHA384", "SHA512", "CRC32", "MURMUR3_32", "MURMUR3_128"}

// Checksum computes data's checksum as ThingsBoard writes it in
// fw_checksum / sw_checksum: lowercase hex of the digest bytes. ThingsBoard
// hashes with Guava, whose 32-bit hash codes (CRC32, MURMUR3_32) and the two
// 64-bit halves of MURMUR3_128 are written as little-endian bytes.
func Checksum(algorithm string, data []byte) (string, error) {
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
	return "", fmt.Errorf("tb: unknown checksum algorithm %q (want one of %s)", algorithm, strings.Join(ChecksumAlgorithms, ", "))
}

func le32(v uint32) string {
	var b [4]byte
	binary.LittleEndian.PutUint32(b[:], v)
	return hex.EncodeToString(b[:])
}

// VerifyChecksum reports whether data matches the expected checksum
// (compared case-insensitively).
func VerifyChecksum(algorithm string, data []byte, expected string) error {
	got, err := Checksum(algorithm, data)
	if err != nil {
		return err
	}
	if !strings.EqualFold(got, strings.TrimSpace(expected)) {
		return fmt.Errorf("tb: %s checksum mismatch: package has %s, server says %s", strings.ToUpper(algorithm), got, expected)
	}
	return nil
}
