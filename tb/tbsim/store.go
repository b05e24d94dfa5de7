package tbsim

import (
	"crypto/rand"
	"crypto/sha3"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/big"
	"sort"
	"strings"
	"time"
)

// Credential types, as ThingsBoard names them.
const (
	credAccessToken = "ACCESS_TOKEN"
	credMQTTBasic   = "MQTT_BASIC"
	credX509        = "X509_CERTIFICATE"
)

// credential is one device credential, keyed by ThingsBoard's credentials id.
type credential struct {
	kind                         string
	device                       string
	clientID, username, password string // MQTT_BASIC
	value                        string // token, or certificate text
}

// device is a device's state. Devices are keyed by name so that gateway
// sub-devices (created by name) share the same store.
type device struct {
	info    Device
	credID  string
	latest  map[string]TsValue
	history map[string][]TsValue
	client  map[string]any
	shared  map[string]any
	rpcSeq  int
	pending []*rpcCall // ordered by id
	claims  []Claim
	drops   []Drop                    // newest last, at most dropLimit
	ota     map[string]*otaAssignment // "fw", "sw"
	limits  RateLimits
	limiter *limiterSet
	// gwLimits are the limits for devices behind this gateway and
	// gwLimiter their one bucket, shared by all its sub-devices and kept
	// across sessions (ThingsBoard keys it by the gateway's id).
	gwLimits  RateLimits
	gwLimiter *limiterSet
	// provisioned is TB's server attribute provisionState = "provisioned".
	provisioned bool
	// direct is the device's own MQTT session (one per device).
	direct *session
	// views are the sessions that can deliver to this device: its direct
	// session or the gateway session it is connected through (at most one,
	// as ThingsBoard allows one session per device).
	views []*view
}

func newDevice(info Device) *device {
	return &device{
		info:    info,
		latest:  map[string]TsValue{},
		history: map[string][]TsValue{},
		client:  map[string]any{},
		shared:  map[string]any{},
		ota:     map[string]*otaAssignment{},
		limiter: newLimiterSet(RateLimits{}),
	}
}

func sha3Hex(s string) string {
	sum := sha3.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// joinNonEmpty is EncryptionUtil.getSha3Hash(delim, parts...)'s input.
func joinNonEmpty(sep string, parts ...string) string {
	var keep []string
	for _, p := range parts {
		if p != "" {
			keep = append(keep, p)
		}
	}
	return strings.Join(keep, sep)
}

// certTrim is EncryptionUtil.certTrimNewLines: the Base64 body of a PEM.
func certTrim(pem string) string {
	r := strings.NewReplacer("-----BEGIN CERTIFICATE-----", "", "-----END CERTIFICATE-----", "", "\n", "", "\r", "")
	return r.Replace(pem)
}

// basicCredID is how ThingsBoard stores an MQTT_BASIC credential's id.
func basicCredID(clientID, username string) string {
	switch {
	case username == "":
		return sha3Hex(clientID)
	case clientID == "":
		return username
	default:
		return sha3Hex(clientID + "|" + username)
	}
}

const alnum = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

func randomAlnum(n int) string {
	b := make([]byte, n)
	for i := range b {
		k, _ := rand.Int(rand.Reader, big.NewInt(int64(len(alnum))))
		b[i] = alnum[k.Int64()]
	}
	return string(b)
}

// credentialFor validates d's credentials and returns the id and record.
func credentialFor(d Device) (string, *credential, error) {
	basic := d.ClientID != "" || d.Username != "" || d.Password != ""
	n := 0
	for _, set := range []bool{d.Token != "", basic, d.CertPEM != ""} {
		if set {
			n++
		}
	}
	if n > 1 {
		return "", nil, fmt.Errorf("device %q: give one kind of credentials (token, basic or certificate)", d.Name)
	}
	switch {
	case d.Token != "":
		return d.Token, &credential{kind: credAccessToken, device: d.Name, value: d.Token}, nil
	case basic:
		if d.ClientID == "" && d.Username == "" {
			return "", nil, fmt.Errorf("device %q: mqtt basic credentials need a client id or a user name", d.Name)
		}
		if d.Username == "" && d.Password != "" {
			return "", nil, fmt.Errorf("device %q: a password can't be combined with client-id-only credentials", d.Name)
		}
		return basicCredID(d.ClientID, d.Username), &credential{kind: credMQTTBasic, device: d.Name,
			clientID: d.ClientID, username: d.Username, password: d.Password}, nil
	case d.CertPEM != "":
		body := certTrim(d.CertPEM)
		return sha3Hex(body), &credential{kind: credX509, device: d.Name, value: d.CertPEM}, nil
	}
	return "", nil, fmt.Errorf("device %q: no credentials", d.Name)
}

// AddDevice registers a device. Without credentials it gets a generated
// access token. Duplicate names or credentials are an error.
func (s *Server) AddDevice(d Device) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, err := s.addDeviceLocked(d)
	return err
}

func (s *Server) addDeviceLocked(d Device) (*device, error) {
	if strings.TrimSpace(d.Name) == "" {
		return nil, fmt.Errorf("adding device: empty name")
	}
	if d.Profile != "" {
		if d.Type != "" && d.Type != d.Profile {
			return nil, fmt.Errorf("adding device %q: type %q and profile %q differ", d.Name, d.Type, d.Profile)
		}
		d.Type = d.Profile
	}
	if d.Type == "" {
		d.Type = defaultDeviceType
	}
	d.Profile = "" // stored and listed as Type
	d.LastGateway = ""
	if _, dup := s.devices[d.Name]; dup {
		return nil, fmt.Errorf("adding device %q: %w", d.Name, ErrDuplicate)
	}
	if d.Token == "" && d.ClientID == "" && d.Username == "" && d.Password == "" && d.CertPEM == "" {
		d.Token = randomAlnum(20)
	}
	id, c, err := credentialFor(d)
	if err != nil {
		return nil, err
	}
	if _, dup := s.creds[id]; dup {
		return nil, fmt.Errorf("adding device %q credentials: %w", d.Name, ErrDuplicate)
	}
	dev := newDevice(d)
	dev.credID = id
	s.devices[d.Name] = dev
	s.creds[id] = c
	s.inheritOTALocked(dev)
	s.notifyLocked()
	return dev, nil
}

// Latest returns the latest value of every telemetry key (nil for an
// unknown device).
func (s *Server) Latest(name string) map[string]TsValue {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.devices[name]
	if d == nil {
		return nil
	}
	out := make(map[string]TsValue, len(d.latest))
	for k, v := range d.latest {
		out[k] = v
	}
	return out
}

// History returns the stored values of one key, oldest first (at most
// 10 000 are kept per key).
func (s *Server) History(name, key string) []TsValue {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.devices[name]
	if d == nil {
		return nil
	}
	return append([]TsValue(nil), d.history[key]...)
}

// ClientAttributes returns the device's client-scope attributes.
func (s *Server) ClientAttributes(name string) map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.devices[name]
	if d == nil {
		return nil
	}
	return copyMap(d.client)
}

// SharedAttributes returns the device's shared-scope attributes.
func (s *Server) SharedAttributes(name string) map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.devices[name]
	if d == nil {
		return nil
	}
	return copyMap(d.shared)
}

func copyMap(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// Claims returns the claiming requests the device sent.
func (s *Server) Claims(name string) []Claim {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.devices[name]
	if d == nil {
		return nil
	}
	return append([]Claim(nil), d.claims...)
}

// SetRateLimits sets the device's rate limits (reported as rateLimits by
// getSessionLimits and enforced on its own sessions; for a gateway, on the
// gateway's own traffic, ThingsBoard's "transportGatewayDevice…" limits).
// They are counted as ThingsBoard counts them: telemetry and client
// attributes take a telemetry message and their data points, every other
// message (requests, RPC, claims, session open and close, attribute and RPC
// subscriptions) a message. Malformed windows are logged and ignored.
func (s *Server) SetRateLimits(name string, l RateLimits) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.devices[name]
	if d == nil {
		s.log.Warn("rate limits for unknown device", "device", name)
		return
	}
	d.limits = l
	d.limiter = newLimiterSet(l)
	for _, e := range d.limiter.errs {
		s.log.Warn("ignoring rate limit", "device", name, "error", e)
	}
}

// AddProvisionProfile adds or replaces (by key) a provisioning profile.
func (s *Server) AddProvisionProfile(p ProvisionProfile) {
	if p.Strategy == "" {
		p.Strategy = StrategyAllowCreate
	}
	if p.Type == "" {
		p.Type = "default"
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.profiles[p.Key] = p
}

// storeTelemetryLocked stores records. A value replaces an existing value
// of the same key and millisecond (ThingsBoard's primary key), whether the
// timestamp was given or is the server's time of arrival: two values of
// one key in the same millisecond keep the last.
func (s *Server) storeTelemetryLocked(d *device, recs []tsRecord) {
	now := time.Now().UnixMilli()
	for _, r := range recs {
		ts := r.Ts
		if !r.HasTs {
			ts = now
		}
		for _, e := range r.KV {
			s.putTsLocked(d, e.Key, TsValue{Ts: ts, Value: e.Value})
		}
	}
	s.notifyLocked()
}

func (s *Server) putTsLocked(d *device, key string, v TsValue) {
	h := d.history[key]
	i := sort.Search(len(h), func(i int) bool { return h[i].Ts >= v.Ts })
	switch {
	case i < len(h) && h[i].Ts == v.Ts:
		h[i] = v
	case i == len(h):
		h = append(h, v)
	default:
		h = append(h, TsValue{})
		copy(h[i+1:], h[i:])
		h[i] = v
	}
	if len(h) > historyLimit {
		h = h[len(h)-historyLimit:]
	}
	d.history[key] = h
	if cur, ok := d.latest[key]; !ok || v.Ts >= cur.Ts {
		d.latest[key] = v
	}
}

// SetShared sets shared attributes and pushes {key: value} to the device's
// attribute-subscribed sessions. A nil value is ignored.
func (s *Server) SetShared(name string, kvs map[string]any) error {
	norm := map[string]any{}
	for k, v := range kvs {
		nv, skip, err := normalizeValue(v)
		if err != nil {
			return fmt.Errorf("shared attribute %q: %w", k, err)
		}
		if !skip {
			norm[k] = nv
		}
	}
	s.mu.Lock()
	d := s.devices[name]
	if d == nil {
		s.mu.Unlock()
		return fmt.Errorf("setting shared attributes of %q: %w", name, ErrUnknownDevice)
	}
	targets := s.setSharedLocked(d, norm)
	s.mu.Unlock()
	pushAll(targets, jsonObject(norm))
	return nil
}

// setSharedLocked stores values and returns the views to push to.
func (s *Server) setSharedLocked(d *device, kvs map[string]any) []*view {
	if len(kvs) == 0 {
		return nil
	}
	for k, v := range kvs {
		d.shared[k] = v
	}
	s.notifyLocked()
	return attrSubscribers(d)
}

// DeleteShared deletes shared attributes and pushes {"deleted":[...]} to the
// device's attribute-subscribed sessions.
func (s *Server) DeleteShared(name string, keys ...string) error {
	s.mu.Lock()
	d := s.devices[name]
	if d == nil {
		s.mu.Unlock()
		return fmt.Errorf("deleting shared attributes of %q: %w", name, ErrUnknownDevice)
	}
	targets, payload := s.deleteSharedLocked(d, keys)
	s.mu.Unlock()
	pushAll(targets, payload)
	return nil
}

func (s *Server) deleteSharedLocked(d *device, keys []string) ([]*view, []byte) {
	if len(keys) == 0 {
		return nil, nil
	}
	for _, k := range keys {
		delete(d.shared, k)
	}
	s.notifyLocked()
	b, _ := json.Marshal(map[string][]string{"deleted": keys})
	return attrSubscribers(d), b
}
