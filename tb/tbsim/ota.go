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
// A package assigned to the device itself wins over its profile's.
func (s *Server) AssignOTA(name, kind string, p OTAPackage) error {
	a, err := newOTAAssignment(kind, p)
	if err != nil {
		return err
	}
	s.mu.Lock()
	d := s.devices[name]
	if d == nil {
		s.mu.Unlock()
		return fmt.Errorf("assigning %s package to %q: %w", kind, name, ErrUnknownDevice)
	}
	d.ota[kind] = a
	push := s.applyOTALocked(d, kind, a)
	s.mu.Unlock()
	push()
	return nil
}

// newOTAAssignment validates a package and computes its checksum.
func newOTAAssignment(kind string, p OTAPackage) (*otaAssignment, error) {
	if err := otaKind(kind); err != nil {
		return nil, err
	}
	if p.ChecksumAlgorithm == "" {
		p.ChecksumAlgorithm = "SHA256"
	}
	p.ChecksumAlgorithm = strings.ToUpper(p.ChecksumAlgorithm)
	if p.Title == "" || p.Version == "" {
		return nil, fmt.Errorf("assigning %s package: title and version are required", kind)
	}
	if len(p.Data) == 0 {
		return nil, fmt.Errorf("assigning %s package %q: no data", kind, p.Title)
	}
	sum, err := checksum(p.ChecksumAlgorithm, p.Data)
	if err != nil {
		return nil, fmt.Errorf("assigning %s package %q: %w", kind, p.Title, err)
	}
	p.Data = append([]byte(nil), p.Data...)
	return &otaAssignment{pkg: p, checksum: sum}, nil
}

// applyOTALocked records the assignment's telemetry and shared attributes
// for d and returns the pushes to make once s.mu is released.
func (s *Server) applyOTALocked(d *device, kind string, a *otaAssignment) func() {
	p, sum := a.pkg, a.checksum
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
	// share a millisecond there; wait for the clock rather than stamp the
	// second one in the future, where a device's own report would sort
	// before it.
	s.storeTelemetryLocked(d, []tsRecord{{Ts: afterMilli(now), HasTs: true,
		KV: []kv{{kind + "_state", "INITIATED"}}}})
	return func() {
		pushAll(delTargets, delPayload)
		pushAll(targets, jsonObject(attrs))
	}
}

// UnassignOTA removes the device's own package and deletes its shared
// attributes (a {"deleted":[...]} push); when the device's profile has a
// package, that one applies from then on.
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
	push := s.unassignOTALocked(d, kind)
	if pa := s.profileOTA[d.info.Type][kind]; pa != nil {
		d.ota[kind] = pa
		push2 := s.applyOTALocked(d, kind, pa)
		push = chain(push, push2)
	}
	s.mu.Unlock()
	push()
	return nil
}

func (s *Server) unassignOTALocked(d *device, kind string) func() {
	delete(d.ota, kind)
	var keys []string
	for _, k := range []string{"title", "version", "tag", "url", "size", "checksum_algorithm", "checksum"} {
		if _, ok := d.shared[kind+"_"+k]; ok {
			keys = append(keys, kind+"_"+k)
		}
	}
	targets, payload := s.deleteSharedLocked(d, keys)
	return func() { pushAll(targets, payload) }
}

func chain(fs ...func()) func() {
	return func() {
		for _, f := range fs {
			f()
		}
	}
}

// AssignProfileOTA assigns a package to a device profile (by name, the
// devices' Type): every device of the profile without a package of its own
// gets it as AssignOTA would give it, devices created later too.
func (s *Server) AssignProfileOTA(profile, kind string, p OTAPackage) error {
	if strings.TrimSpace(profile) == "" {
		return fmt.Errorf("assigning %s package: empty profile name", kind)
	}
	a, err := newOTAAssignment(kind, p)
	if err != nil {
		return err
	}
	s.mu.Lock()
	if s.profileOTA[profile] == nil {
		s.profileOTA[profile] = map[string]*otaAssignment{}
	}
	old := s.profileOTA[profile][kind]
	s.profileOTA[profile][kind] = a
	var pushes []func()
	for _, d := range s.devices {
		if d.info.Type != profile {
			continue
		}
		if cur := d.ota[kind]; cur != nil && cur != old {
			continue // the device's own package wins
		}
		d.ota[kind] = a
		pushes = append(pushes, s.applyOTALocked(d, kind, a))
	}
	s.mu.Unlock()
	chain(pushes...)()
	return nil
}

// UnassignProfileOTA removes a profile's package from the profile and from
// the devices that had it through the profile.
func (s *Server) UnassignProfileOTA(profile, kind string) error {
	if err := otaKind(kind); err != nil {
		return err
	}
	s.mu.Lock()
	old := s.profileOTA[profile][kind]
	delete(s.profileOTA[profile], kind)
	var pushes []func()
	for _, d := range s.devices {
		if old != nil && d.info.Type == profile && d.ota[kind] == old {
			pushes = append(pushes, s.unassignOTALocked(d, kind))
		}
	}
	s.mu.Unlock()
	chain(pushes...)()
	return nil
}

// inheritOTALocked gives a new device its profile's packages.
func (s *Server) inheritOTALocked(d *device) {
	for kind, a := range s.profileOTA[d.info.Type] {
		d.ota[kind] = a
		s.applyOTALocked(d, kind, a) // a new device has no session to push to
	}
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

// afterMilli waits until the wall clock has passed the millisecond ms and
// returns the current millisecond (at most about 1 ms of waiting).
func afterMilli(ms int64) int64 {
	for {
		now := time.Now().UnixMilli()
		if now > ms {
			return now
		}
		time.Sleep(100 * time.Microsecond)
	}
}
