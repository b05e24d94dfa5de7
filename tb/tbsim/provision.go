package tbsim

import (
	"bytes"
	"encoding/json"
	"strings"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
)

// Provisioning response texts (JsonConverter).
const (
	provisionNotFound = `{"errorMsg":"Provision data was not found!","status":"NOT_FOUND"}`
	provisionFailure  = `{"errorMsg":"Failed to provision device!","status":"FAILURE"}`
)

// provisionRequest is the parsed /provision/request payload.
type provisionRequest struct {
	key, secret, deviceName, credType   string
	token, clientID, username, password string
	hash                                string
	gateway                             bool
}

func parseProvisionRequest(payload []byte) (provisionRequest, error) {
	var r provisionRequest
	raw, err := parseJSON(payload)
	if err != nil {
		return r, err
	}
	if kind(raw) != '{' {
		return r, malformed("provision request is not a json object")
	}
	ms, err := objectMembers(raw)
	if err != nil {
		return r, err
	}
	str := func(name string, required bool) (string, error) {
		m, ok := findMember(ms, name)
		if !ok {
			if required {
				return "", runtimeFailure("failed to find the field %s in json body", name)
			}
			return "", nil
		}
		v, ok := gsonString(m)
		if !ok {
			return "", runtimeFailure("field %s is not a string", name)
		}
		return v, nil
	}
	fields := []struct {
		name     string
		dst      *string
		required bool
	}{
		{"deviceName", &r.deviceName, false}, {"credentialsType", &r.credType, false},
		{"token", &r.token, false}, {"clientId", &r.clientID, false}, {"username", &r.username, false},
		{"password", &r.password, false}, {"hash", &r.hash, false},
		{"provisionDeviceKey", &r.key, true}, {"provisionDeviceSecret", &r.secret, true},
	}
	for _, f := range fields {
		if *f.dst, err = str(f.name, f.required); err != nil {
			return r, err
		}
	}
	if _, ok := findMember(ms, "credentialsType"); !ok {
		r.credType = credAccessToken
	}
	switch r.credType {
	case credAccessToken, credMQTTBasic, credX509:
	default:
		return r, runtimeFailure("unknown credentials type %q", r.credType)
	}
	if g, ok := findMember(ms, "gateway"); ok {
		v, _ := gsonString(g)
		r.gateway = strings.EqualFold(v, "true")
	}
	return r, nil
}

// handleProvision serves a provisioning-only session (§2.9).
func (s *Server) handleProvision(ss *session, pk packets.Packet) {
	if pk.TopicName != topicProvisionReq {
		ss.puback(pk, codeTopicNameInvalid)
		ss.close(codeTopicNameInvalid)
		return
	}
	req, err := parseProvisionRequest(pk.Payload)
	if err != nil {
		if isRuntime(err) {
			ss.puback(pk, codeImplementationError)
			ss.close(codeImplementationError)
			return
		}
		s.fail(ss, pk, err)
		return
	}
	resp, ok := s.provision(req)
	ss.puback(pk, codeSuccess)
	_, _ = ss.publish(topicProvisionResp, resp)
	if ok {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			t := time.NewTimer(s.opts.ProvisionCloseAfter)
			defer t.Stop()
			select {
			case <-t.C:
				ss.close(codeSuccess)
			case <-ss.ctx.Done():
			}
		}()
	}
}

// provision runs DeviceProvisionServiceImpl.provisionDevice.
func (s *Server) provision(r provisionRequest) ([]byte, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r.deviceName != "" {
		r.deviceName = strings.TrimSpace(r.deviceName)
		if r.deviceName == "" {
			return []byte(provisionFailure), false
		}
	}
	if r.key == "" || r.secret == "" {
		return []byte(provisionNotFound), false
	}
	p, ok := s.profiles[r.key]
	if !ok || p.Secret != r.secret {
		return []byte(provisionNotFound), false
	}
	existing := s.devices[r.deviceName]
	switch p.Strategy {
	case StrategyCheckPreProvisioned:
		if existing == nil || existing.info.Type != p.Type || existing.provisioned {
			return []byte(provisionFailure), false
		}
		existing.provisioned = true
		return s.credentialsResponseLocked(existing), true
	default:
		if existing != nil {
			return []byte(provisionFailure), false
		}
		name := r.deviceName
		if name == "" {
			name = randomAlnum(20)
		}
		d := Device{Name: name, Type: p.Type, Gateway: r.gateway}
		if r.token != "" || r.hash != "" || r.username != "" || r.password != "" || r.clientID != "" {
			switch r.credType {
			case credAccessToken:
				if r.token == "" {
					return []byte(provisionFailure), false
				}
				d.Token = r.token
			case credMQTTBasic:
				d.ClientID, d.Username, d.Password = r.clientID, r.username, r.password
			case credX509:
				if r.hash == "" {
					return []byte(provisionFailure), false
				}
				d.CertPEM = r.hash
			}
		}
		dev, err := s.addDeviceLocked(d)
		if err != nil {
			s.log.Info("provisioning failed", "device", name, "error", err)
			return []byte(provisionFailure), false
		}
		dev.provisioned = true
		s.log.Info("device provisioned", "device", name)
		return s.credentialsResponseLocked(dev), true
	}
}

func (s *Server) credentialsResponseLocked(d *device) []byte {
	var b bytes.Buffer
	b.WriteString(`{"credentialsValue":`)
	var kind string
	switch c := s.creds[d.credID]; c.kind {
	case credMQTTBasic:
		kind = credMQTTBasic
		v, _ := json.Marshal(struct {
			ClientID string `json:"clientId"`
			UserName string `json:"userName"`
			Password string `json:"password"`
		}{c.clientID, c.username, c.password})
		b.Write(v)
	default:
		kind = c.kind
		v, _ := json.Marshal(c.value)
		b.Write(v)
	}
	b.WriteString(`,"credentialsType":`)
	k, _ := json.Marshal(kind)
	b.Write(k)
	b.WriteString(`,"status":"SUCCESS"}`)
	return b.Bytes()
}
