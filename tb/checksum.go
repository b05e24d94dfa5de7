package tb

import (
	"fmt"
	"strings"

	"github.com/tbflow/tbflow/internal/checksum"
)

// ChecksumAlgorithms are the algorithms ThingsBoard offers for OTA packages.
var ChecksumAlgorithms = checksum.Algorithms

// Checksum computes data's checksum as ThingsBoard writes it in
// fw_checksum / sw_checksum: lowercase hex of the digest bytes. ThingsBoard
// hashes with Guava, whose 32-bit hash codes (CRC32, MURMUR3_32) and the two
// 64-bit halves of MURMUR3_128 are written as little-endian bytes.
func Checksum(algorithm string, data []byte) (string, error) {
	sum, err := checksum.Compute(algorithm, data)
	if err != nil {
		return "", fmt.Errorf("tb: %w", err)
	}
	return sum, nil
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
