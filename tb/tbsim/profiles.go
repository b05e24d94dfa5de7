package tbsim

import (
	"fmt"
	"sort"
	"strings"

	"github.com/mochi-mqtt/server/v2/packets"
)

// Payload types of a device profile's MQTT transport.
const (
	PayloadJSON     = "JSON"
	PayloadProtobuf = "PROTOBUF"
)

// DeviceProfile is the MQTT transport part of a ThingsBoard device profile.
// A device uses the profile named by its Type (its "profile"); devices of a
// type without a profile behave as the default profile.
type DeviceProfile struct {
	Name string `json:"name"`
	// TelemetryTopic and AttributesTopic are the profile's topic filters
	// (+ and # allowed); empty means v1/devices/me/telemetry and
	// v1/devices/me/attributes. With a custom filter the default topic is
	// an unknown topic (DeviceSessionCtx).
	TelemetryTopic  string `json:"telemetryTopic,omitempty"`
	AttributesTopic string `json:"attributesTopic,omitempty"`
	// PayloadType is JSON (default) or PROTOBUF. tbsim decodes no Protobuf:
	// under PROTOBUF every payload on the profile's topics fails to parse,
	// as a JSON payload does on ThingsBoard (…/j topics still take JSON).
	PayloadType string `json:"payloadType,omitempty"`
	// SendAckOnValidationException makes an MQTT 3.1.1 session answer a
	// payload that fails to parse with a PUBACK (the message is dropped)
	// instead of closing the connection.
	SendAckOnValidationException bool `json:"sendAckOnValidationException,omitempty"`
}

// AddDeviceProfile adds or replaces (by name) a device profile. It applies
// at once to every device of that type, connected or not, as a profile
// update does in ThingsBoard.
func (s *Server) AddDeviceProfile(p DeviceProfile) error {
	if strings.TrimSpace(p.Name) == "" {
		return fmt.Errorf("adding device profile: empty name")
	}
	switch strings.ToUpper(p.PayloadType) {
	case "", PayloadJSON:
		p.PayloadType = PayloadJSON
	case PayloadProtobuf:
		p.PayloadType = PayloadProtobuf
	default:
		return fmt.Errorf("device profile %q: payload type %q: want JSON or PROTOBUF", p.Name, p.PayloadType)
	}
	if p.TelemetryTopic == "" {
		p.TelemetryTopic = topicTelemetry
	}
	if p.AttributesTopic == "" {
		p.AttributesTopic = topicAttributes
	}
	for _, f := range []string{p.TelemetryTopic, p.AttributesTopic} {
		if !validProfileFilter(f) {
			return fmt.Errorf("device profile %q: invalid topic filter %q", p.Name, f)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.devProfiles[p.Name] = &p
	return nil
}

// DeviceProfiles lists the device profiles sorted by name.
func (s *Server) DeviceProfiles() []DeviceProfile {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]DeviceProfile, 0, len(s.devProfiles))
	for _, p := range s.devProfiles {
		out = append(out, *p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// defaultProfile is how a device without a profile of its own behaves.
var defaultProfile = &DeviceProfile{Name: defaultDeviceType, TelemetryTopic: topicTelemetry,
	AttributesTopic: topicAttributes, PayloadType: PayloadJSON}

// profileOf returns d's device profile (never nil).
func (s *Server) profileOf(d *device) *DeviceProfile {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.profileOfLocked(d)
}

func (s *Server) profileOfLocked(d *device) *DeviceProfile {
	if d != nil {
		if p := s.devProfiles[d.info.Type]; p != nil {
			return p
		}
	}
	return defaultProfile
}

func (p *DeviceProfile) protobuf() bool { return p.PayloadType == PayloadProtobuf }

// validProfileFilter accepts a non-empty filter whose # is last.
func validProfileFilter(f string) bool {
	if f == "" || len(f) > 1024 {
		return false
	}
	i := strings.IndexByte(f, '#')
	return i < 0 || i == len(f)-1
}

// matchProfileTopic is MqttTopicFilterFactory's matching: exact, or with
// + for one non-empty level and a trailing # for any (also no) levels.
func matchProfileTopic(filter, topic string) bool {
	if filter == "#" {
		return true
	}
	if !strings.ContainsAny(filter, "+#") {
		return filter == topic
	}
	fs, ts := strings.Split(filter, "/"), strings.Split(topic, "/")
	for i, f := range fs {
		if f == "#" {
			return true
		}
		if i >= len(ts) {
			return false
		}
		if f == "+" {
			if ts[i] == "" {
				return false
			}
			continue
		}
		if f != ts[i] {
			return false
		}
	}
	return len(fs) == len(ts)
}

// protoRefused fails a publish whose payload the profile's Protobuf adaptor
// would have to parse; it returns true when it did.
func (s *Server) protoRefused(ss *session, pk packets.Packet, p *DeviceProfile) bool {
	if !p.protobuf() {
		return false
	}
	s.fail(ss, pk, malformed("payload is not a protobuf message of device profile %q", p.Name))
	return true
}
