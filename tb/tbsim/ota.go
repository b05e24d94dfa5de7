package tbsim

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	otasum "github.com/tbflow/tbflow/internal/checksum"
)

// otaAssignment is a package assigned to a device.
type otaAssignment struct {
	pkg      OTAPackage
	checksum string
}

// checksum computes a package checksum as ThingsBoard does (Guava hashing,
// HashCode.toString); see internal/checksum.
func checksum(alg string, data []byte) (string, error) {
	return otasum.Compute(alg, data)
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
	s.storeTelemetryLocked(d, []tsRecord{{Ts: now, HasTs: true, KV: target}})
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
	// ThingsBoard saves the two states in separate steps, so they never
	// share a millisecond there.
	s.storeTelemetryLocked(d, []tsRecord{{Ts: max(time.Now().UnixMilli(), now+1), HasTs: true,
		KV: []kv{{kind + "_state", "INITIATED"}}}})
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
	if s.limited(ss, 0) {
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
