package checksum

import "testing"

// Guava's known hashes, which ThingsBoard shows in fw_checksum.
func TestChecksums(t *testing.T) {
	const fox = "The quick brown fox jumps over the lazy dog"
	// Guava's HashingTest known hashes (what ThingsBoard shows in fw_checksum).
	cases := []struct{ alg, in, want string }{
		{"MD5", fox, "9e107d9d372bb6826bd81d3542a419d6"},
		{"SHA256", fox, "d7a8fbb307d7809469ca9abcb0082e4f8d5651e46d3cdb762d02d0bf37c9e592"},
		{"SHA384", fox, "ca737f1014a48f4c0b6dd43cb177b0afd9e5169367544c494011e3317dbf9a509cb1e5dc1e85a941bbee3d7f2afbc9b1"},
		{"SHA512", fox, "07e547d9586f6a73f73fbac0435ed76951218fb7d0c8d788a309d785436bbb642e93a252a954f23912547d1e8a3b5ed6e1bfd7097821233fa0538f3db854fee6"},
		{"CRC32", fox, "39a34f41"},
		{"CRC32", fox + ".", "e9259051"},
		{"MURMUR3_32", fox, "23f74f2e"},
		{"MURMUR3_32", fox + ".", "fc8bc4d5"},
		{"MURMUR3_32", "", "00000000"},
		{"MURMUR3_128", fox, "6c1b07bc7bbc4be347939ac4a93c437a"},
		{"MURMUR3_128", fox + ".", "c902e99e1f4899cde7b68789a3a15d69"},
		{"MURMUR3_128", "", "00000000000000000000000000000000"},
	}
	for _, tc := range cases {
		got, err := Compute(tc.alg, []byte(tc.in))
		if err != nil || got != tc.want {
			t.Errorf("%s(%q) = %s %v, want %s", tc.alg, tc.in, got, err, tc.want)
		}
	}
	if _, err := Compute("SHA1", nil); err == nil {
		t.Error("unknown algorithm accepted")
	}
}
