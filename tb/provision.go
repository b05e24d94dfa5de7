package tb

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// Credential types of ThingsBoard devices.
const (
	CredentialsAccessToken = "ACCESS_TOKEN"
	CredentialsMQTTBasic   = "MQTT_BASIC"
	CredentialsX509        = "X509_CERTIFICATE"
)

// ProvisionRequest asks the server to create (or hand over) a device using
// the provisioning key and secret of a device profile.
type ProvisionRequest struct {
	DeviceName      string // optional: the server may generate one
	ProvisionKey    string // required
	ProvisionSecret string // required
	// CredentialsType: CredentialsAccessToken (default), CredentialsMQTTBasic
	// or CredentialsX509.
	CredentialsType string
	Token           string // ACCESS_TOKEN: the token to use (empty = server generates one)
	ClientID        string // MQTT_BASIC
	Username        string // MQTT_BASIC
	Password        string // MQTT_BASIC
	CertificatePEM  string // X509_CERTIFICATE: the device certificate
	Gateway         bool   // create the device as a gateway
}

// ProvisionResult holds the credentials the server issued.
type ProvisionResult struct {
	CredentialsType string
	AccessToken     string // ACCESS_TOKEN
	ClientID        string // MQTT_BASIC
	Username        string // MQTT_BASIC
	Password        string // MQTT_BASIC
	Certificate     string // X509_CERTIFICATE
}

// Apply returns cfg with the issued credentials set (for X.509 the TLS
// files stay the caller's business).
func (r *ProvisionResult) Apply(cfg Config) Config {
	cfg.AccessToken, cfg.ClientID, cfg.Username, cfg.Password = "", "", "", ""
	switch r.CredentialsType {
	case CredentialsAccessToken:
		cfg.AccessToken = r.AccessToken
	case CredentialsMQTTBasic:
		cfg.ClientID, cfg.Username, cfg.Password = r.ClientID, r.Username, r.Password
	}
	return cfg
}

// ProvisionError is the server's refusal: Status NOT_FOUND (unknown
// key/secret) or FAILURE (device exists, not pre-provisioned, …).
type ProvisionError struct {
	Status  string
	Message string
}

func (e *ProvisionError) Error() string {
	return fmt.Sprintf("tb: provisioning refused: %s: %s", e.Status, e.Message)
}

// Provision connects to the server named by server (Host, Port, TLS and
// timeouts are used; credentials are ignored) as the provisioning client,
// sends req and returns the issued credentials. The request is bounded by
// ctx, or by server.RequestTimeout when ctx has no deadline.
func Provision(ctx context.Context, server Config, req ProvisionRequest) (*ProvisionResult, error) {
	if req.ProvisionKey == "" || req.ProvisionSecret == "" {
		return nil, errors.New("tb: provisioning needs the profile's provision key and secret")
	}
	server.AccessToken, server.ClientID, server.Username, server.Password = "", "provision", "provision", ""
	cfg, err := server.withDefaults()
	if err != nil {
		return nil, err
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, cfg.RequestTimeout)
		defer cancel()
	}
	body := map[string]any{
		"provisionDeviceKey":    req.ProvisionKey,
		"provisionDeviceSecret": req.ProvisionSecret,
	}
	if req.DeviceName != "" {
		body["deviceName"] = req.DeviceName
	}
	switch req.CredentialsType {
	case "", CredentialsAccessToken:
		if req.Token != "" {
			body["credentialsType"] = CredentialsAccessToken
			body["token"] = req.Token
		}
	case CredentialsMQTTBasic:
		body["credentialsType"] = CredentialsMQTTBasic
		body["clientId"], body["username"], body["password"] = req.ClientID, req.Username, req.Password
	case CredentialsX509:
		if req.CertificatePEM == "" {
			return nil, errors.New("tb: X509_CERTIFICATE provisioning needs the device certificate")
		}
		body["credentialsType"] = CredentialsX509
		body["hash"] = req.CertificatePEM
	default:
		return nil, fmt.Errorf("tb: unknown credentials type %q", req.CredentialsType)
	}
	if req.Gateway {
		body["gateway"] = true
	}
	payload, _ := json.Marshal(body)

	o := mqtt.NewClientOptions()
	o.AddBroker(cfg.brokerURL())
	o.SetProtocolVersion(4)
	o.SetClientID("provision")
	o.SetUsername("provision")
	if cfg.TLS != nil {
		tc, err := cfg.TLS.tlsConfig(cfg.Host)
		if err != nil {
			return nil, err
		}
		o.SetTLSConfig(tc)
	}
	o.SetCleanSession(true)
	o.SetAutoReconnect(false)
	o.SetConnectTimeout(cfg.ConnectTimeout)
	o.SetWriteTimeout(cfg.WriteTimeout)
	o.SetKeepAlive(cfg.KeepAlive)
	resp := make(chan []byte, 1)
	o.SetDefaultPublishHandler(func(_ mqtt.Client, m mqtt.Message) {
		if m.Topic() == "/provision/response" {
			select {
			case resp <- append([]byte(nil), m.Payload()...):
			default:
			}
		}
	})
	cli := mqtt.NewClient(o)
	if err := waitToken(ctx, cli.Connect()); err != nil {
		return nil, fmt.Errorf("tb: provisioning: connecting: %w", err)
	}
	defer cli.Disconnect(100)
	if err := waitToken(ctx, cli.Subscribe("/provision/response", 1, nil)); err != nil {
		return nil, fmt.Errorf("tb: provisioning: subscribing: %w", err)
	}
	if err := waitToken(ctx, cli.Publish("/provision/request", 1, false, payload)); err != nil {
		return nil, fmt.Errorf("tb: provisioning: sending request: %w", err)
	}
	var b []byte
	select {
	case b = <-resp:
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: provisioning: %w", ErrTimeout, ctx.Err())
	}
	return decodeProvisionResponse(b)
}

func decodeProvisionResponse(b []byte) (*ProvisionResult, error) {
	var r struct {
		Status           string          `json:"status"`
		ErrorMsg         string          `json:"errorMsg"`
		CredentialsType  string          `json:"credentialsType"`
		CredentialsValue json.RawMessage `json:"credentialsValue"`
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("tb: malformed provisioning response %q: %w", truncate(b), err)
	}
	if r.Status != "SUCCESS" {
		if r.Status == "" {
			return nil, fmt.Errorf("tb: provisioning response without status: %q", truncate(b))
		}
		return nil, &ProvisionError{Status: r.Status, Message: r.ErrorMsg}
	}
	res := &ProvisionResult{CredentialsType: r.CredentialsType}
	switch r.CredentialsType {
	case CredentialsMQTTBasic:
		var v struct {
			ClientID string `json:"clientId"`
			UserName string `json:"userName"`
			Password string `json:"password"`
		}
		if err := json.Unmarshal(r.CredentialsValue, &v); err != nil {
			return nil, fmt.Errorf("tb: malformed MQTT_BASIC credentials in provisioning response: %w", err)
		}
		res.ClientID, res.Username, res.Password = v.ClientID, v.UserName, v.Password
	case CredentialsAccessToken, CredentialsX509:
		var s string
		if err := json.Unmarshal(r.CredentialsValue, &s); err != nil {
			return nil, fmt.Errorf("tb: malformed %s credentials in provisioning response: %w", r.CredentialsType, err)
		}
		if r.CredentialsType == CredentialsAccessToken {
			res.AccessToken = s
		} else {
			res.Certificate = s
		}
	default:
		return nil, fmt.Errorf("tb: provisioning response with unknown credentials type %q", r.CredentialsType)
	}
	return res, nil
}

// waitToken waits for a paho token or ctx.
func waitToken(ctx context.Context, tok mqtt.Token) error {
	select {
	case <-tok.Done():
		if err := tok.Error(); err != nil {
			if ct, ok := tok.(*mqtt.ConnectToken); ok && ct.ReturnCode() != 0 && ct.ReturnCode() < 6 {
				return &ConnectError{Code: ct.ReturnCode()}
			}
			return err
		}
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
