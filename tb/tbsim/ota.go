package tbsim

import (
	"crypto/md5"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash/crc32"
	"math/bits"
	"strconv"
	"strings"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
)

// otaAssignment is a package assigned to a device.
type otaAssignment struct {
	pkg      OTAPackage
	checksum string
}

// checksum computes a package checksum as ThingsBoard does (Guava hashing,
// HashCode.toString: the hash bytes in Guava's order, lower-case hex; for
// CRC32 and MURMUR3_32 that is the little-endian bytes of the int).
func checksum(alg string, data []byte) (string, error) {
	switch alg {
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
		var b [4]byte
		binary.LittleEndian.PutUint32(b[:], crc32.ChecksumIEEE(data))
		return hex.EncodeToString(b[:]), nil
	case "MURMUR3_32":
		var b [4]byte
		binary.LittleEndian.PutUint32(b[:], murmur3x86_32(data, 0))
		return hex.EncodeToString(b[:]), nil
	case "MURMUR3_128":
		h1, h2 := murmur3x64_128(data, 0)
		var b [16]byte
		binary.LittleEndian.PutUint64(b[:8], h1)
		binary.LittleEndian.PutUint64(b[8:], h2)
		return hex.EncodeToString(b[:]), nil
	}
	return "", fmt.Errorf("unknown checksum algorithm %q", alg)
}

// murmur3x86_32 is MurmurHash3_x86_32 (Guava's murmur3_32 for byte input).
func murmur3x86_32(data []byte, seed uint32) uint32 {
	const c1, c2 = 0xcc9e2d51, 0x1b873593
	h := seed
	n := len(data) / 4
	for i := range n {
		k := binary.LittleEndian.Uint32(data[i*4:])
		k *= c1
		k = bits.RotateLeft32(k, 15)
		k *= c2
		h ^= k
		h = bits.RotateLeft32(h, 13)
		h = h*5 + 0xe6546b64
	}
	tail := data[n*4:]
	var k uint32
	switch len(tail) {
	case 3:
		k ^= uint32(tail[2]) << 16
		fallthrough
	case 2:
		k ^= uint32(tail[1]) << 8
		fallthrough
	case 1:
		k ^= uint32(tail[0])
		k *= c1
		k = bits.RotateLeft32(k, 15)
		k *= c2
		h ^= k
	}
	h ^= uint32(len(data))
	h ^= h >> 16
	h *= 0x85ebca6b
	h ^= h >> 13
	h *= 0xc2b2ae35
	h ^= h >> 16
	return h
}

func fmix64(k uint64) uint64 {
	k ^= k >> 33
	k *= 0xff51afd7ed558ccd
	k ^= k >> 33
	k *= 0xc4ceb9fe1a85ec53
	k ^= k >> 33
	return k
}

// murmur3x64_128 is MurmurHash3_x64_128 (Guava's murmur3_128).
func murmur3x64_128(data []byte, seed uint64) (uint64, uint64) {
	const c1, c2 = 0x87c37b91114253d5, 0x4cf5ad432745937f
	h1, h2 := seed, seed
	n := len(data) / 16
	for i := range n {
		k1 := binary.LittleEndian.Uint64(data[i*16:])
		k2 := binary.LittleEndian.Uint64(data[i*16+8:])
		k1 *= c1
		k1 = bits.RotateLeft64(k1, 31)
		k1 *= c2
		h1 ^= k1
		h1 = bits.RotateLeft64(h1, 27)
		h1 += h2
		h1 = h1*5 + 0x52dce729
		k2 *= c2
		k2 = bits.RotateLeft64(k2, 33)
		k2 *= c1
		h2 ^= k2
		h2 = bits.RotateLeft64(h2, 31)
		h2 += h1
		h2 = h2*5 + 0x38495ab5
	}
	tail := data[n*16:]
	var k1, k2 uint64
	for i := len(tail) - 1; i >= 8; i-- {
		k2 ^= uint64(tail[i]) << (uint(i-8) * 8)
	}
	if len(tail) > 8 {
		k2 *= c2
		k2 = bits.RotateLeft64(k2, 33)
		k2 *= c1
		h2 ^= k2
	}
	for i := min(len(tail), 8) - 1; i >= 0; i-- {
		k1 ^= uint64(tail[i]) << (uint(i) * 8)
	}
	if len(tail) > 0 {
		k1 *= c1
		k1 = bits.RotateLeft64(k1, 31)
		k1 *= c2
		h1 ^= k1
	}
	h1 ^= uint64(len(data))
	h2 ^= uint64(len(data))
	h1 += h2
	h2 += h1
	h1 = fmix64(h1)
	h2 = fmix64(h2)
	h1 += h2
	h2 += h1
	return h1, h2
}

func otaKind(kind string) error {
	if kind != "fw" && kind != "sw" {
		return fmt.Errorf("ota kind %q: want fw or sw", kind)
	}
	return nil
}

// AssignOTA assigns a firmware ("fw") or software ("sw") package (§2.10):
// telemetry target_<kind>_* and <kind>_state QUEUED, then the shared
// attributes <kind>_title, _version, (_tag), _size, _checksum_algorithm,
// _checksum through the normal update path, then <kind>_state INITIATED.
func (s *Server) AssignOTA(name, kind string, p OTAPackage) error {
	if err := otaKind(kind); err != nil {
		return err
	}
	if p.ChecksumAlgorithm == "" {
		p.ChecksumAlgorithm = "SHA256"
	}
	p.ChecksumAlgorithm = strings.ToUpper(p.ChecksumAlgorithm)
	if p.Title == "" || p.Version == "" {
		return fmt.Errorf("assigning %s package: title and version are required", kind)
	}
	if len(p.Data) == 0 {
		return fmt.Errorf("assigning %s package %q: no data", kind, p.Title)
	}
	sum, err := checksum(p.ChecksumAlgorithm, p.Data)
	if err != nil {
		return fmt.Errorf("assigning %s package %q: %w", kind, p.Title, err)
	}
	p.Data = append([]byte(nil), p.Data...)
	s.mu.Lock()
	d := s.devices[name]
	if d == nil {
		s.mu.Unlock()
		return fmt.Errorf("assigning %s package to %q: %w", kind, name, ErrUnknownDevice)
	}
	d.ota[kind] = &otaAssignment{pkg: p, checksum: sum}
	now := time.Now().UnixMilli()
	target := []kv{
		{kind + "_state", "QUEUED"},
		{"target_" + kind + "_title", p.Title},
		{"target_" + kind + "_version", p.Version},
		{"target_" + kind + "_ts", now},
	}
	if p.Tag != "" {
		target = append(target, kv{"target_" + kind + "_tag", p.Tag})
	}
	s.storeTelemetryLocked(d, []tsRecord{{KV: target}})
	var deleted []string
	if _, ok := d.shared[kind+"_tag"]; ok && p.Tag == "" {
		deleted = append(deleted, kind+"_tag")
	}
	if _, ok := d.shared[kind+"_url"]; ok {
		deleted = append(deleted, kind+"_url")
	}
	delTargets, delPayload := s.deleteSharedLocked(d, deleted)
	attrs := map[string]any{
		kind + "_title":              p.Title,
		kind + "_version":            p.Version,
		kind + "_size":               int64(len(p.Data)),
		kind + "_checksum_algorithm": p.ChecksumAlgorithm,
		kind + "_checksum":           sum,
	}
	if p.Tag != "" {
		attrs[kind+"_tag"] = p.Tag
	}
	targets := s.setSharedLocked(d, attrs)
	s.storeTelemetryLocked(d, []tsRecord{{KV: []kv{{kind + "_state", "INITIATED"}}}})
	s.mu.Unlock()
	pushAll(delTargets, delPayload)
	pushAll(targets, jsonObject(attrs))
	return nil
}

// UnassignOTA removes the package and deletes its shared attributes (a
// {"deleted":[...]} push).
func (s *Server) UnassignOTA(name, kind string) error {
	if err := otaKind(kind); err != nil {
		return err
	}
	s.mu.Lock()
	d := s.devices[name]
	if d == nil {
		s.mu.Unlock()
		return fmt.Errorf("unassigning %s package of %q: %w", kind, name, ErrUnknownDevice)
	}
	delete(d.ota, kind)
	var keys []string
	for _, k := range []string{"title", "version", "tag", "url", "size", "checksum_algorithm", "checksum"} {
		if _, ok := d.shared[kind+"_"+k]; ok {
			keys = append(keys, kind+"_"+k)
		}
	}
	targets, payload := s.deleteSharedLocked(d, keys)
	s.mu.Unlock()
	pushAll(targets, payload)
	return nil
}

// onOTARequest serves v2/{fw,sw}/request/{req}/chunk/{n} (§2.10).
func (s *Server) onOTARequest(ss *session, pk packets.Packet, kind string, m []string) {
	reqID := m[1]
	size := 0
	if p := string(pk.Payload); p != "" {
		v, ok := javaParseInt(p)
		if !ok {
			s.fail(ss, pk, runtimeFailure("chunk size %q is not an integer", p))
			return
		}
		size = v
	}
	chunk, ok := javaParseInt(m[2])
	if !ok {
		s.fail(ss, pk, runtimeFailure("chunk index %q is not an integer", m[2]))
		return
	}
	s.mu.Lock()
	if size > 0 {
		ss.chunkSizes[reqID] = size
	} else {
		size = ss.chunkSizes[reqID]
	}
	s.mu.Unlock()
	if size > s.opts.MaxPayloadSize {
		s.otaError(ss, "PAYLOAD_TOO_LARGE")
		return
	}
	if s.limited(ss, false, 0) {
		return
	}
	s.mu.Lock()
	a := ss.otaPkgs[reqID]
	if a == nil {
		a = ss.dev.ota[kind]
		if a != nil {
			ss.otaPkgs[reqID] = a
		}
	}
	s.mu.Unlock()
	if a == nil {
		s.otaError(ss, "NOT_FOUND")
		return
	}
	ss.puback(pk, codeSuccess)
	data := a.pkg.Data
	var out []byte
	if size < 1 {
		out = data
	} else {
		start := int64(size) * int64(chunk)
		if start < int64(len(data)) {
			end := min(start+int64(size), int64(len(data)))
			out = data[start:end]
		}
	}
	_, _ = ss.publish("v2/"+kind+"/response/"+reqID+"/chunk/"+strconv.Itoa(chunk), out)
}

// otaError publishes the error text on v2/fw/error and closes the session.
func (s *Server) otaError(ss *session, text string) {
	_, _ = ss.publish(topicOTAError, []byte(text))
	ss.close(codeImplementationError)
}
