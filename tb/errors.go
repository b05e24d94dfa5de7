package tb

import (
	"errors"
	"fmt"
)

var (
	// ErrClosed is returned by calls on a closed Device, and by Ack.Wait for
	// messages still in the outbox when the Device was closed (they are sent
	// after the next start when the outbox is on disk).
	ErrClosed = errors.New("tb: client closed")
	// ErrNotConnected is returned by QoS 0 publishes made while offline:
	// QoS 0 messages are never queued.
	ErrNotConnected = errors.New("tb: not connected")
	// ErrOutboxFull is returned when a QoS 1 publish finds the outbox full
	// (after waiting for the context with the Block policy).
	ErrOutboxFull = errors.New("tb: outbox full")
	// ErrDropped completes the Ack of a message evicted from a full outbox by
	// the DropOldest policy.
	ErrDropped = errors.New("tb: message dropped from full outbox")
	// ErrPayloadTooLarge is returned for a publish larger than the server's
	// maximum payload size.
	ErrPayloadTooLarge = errors.New("tb: payload too large")
	// ErrInvalidPayload is returned for a value that is not a shape
	// ThingsBoard accepts on that topic.
	ErrInvalidPayload = errors.New("tb: invalid payload")
	// ErrTimeout is returned when a request got no answer in time.
	ErrTimeout = errors.New("tb: request timed out")
	// ErrNotGateway is returned by ConnectGateway when the server's
	// getSessionLimits answer has no gatewayRateLimits: the token is a
	// plain device's, and ThingsBoard would only log (never acknowledge)
	// every gateway message.
	ErrNotGateway = errors.New("tb: the server does not treat this device as a gateway (no gatewayRateLimits in its session limits): check the device's \"Is gateway\" flag or the token")
	// ErrOutcomeUnknown fails a client-side RPC whose connection was lost
	// after it was sent: the server may or may not have run it, and it is
	// not sent again (the rule chain would run it twice). The caller may
	// retry.
	ErrOutcomeUnknown = errors.New("tb: connection lost after the request was sent: outcome unknown")
)

// ConnectError is a CONNACK refusal from the server.
type ConnectError struct {
	Code byte // MQTT 3.1.1 return code (under MQTT 5, the equivalent of Reason)
	// Reason is the MQTT 5 reason code (0 under MQTT 3.1.1).
	Reason byte
}

func (e *ConnectError) Error() string {
	if e.Reason != 0 {
		return fmt.Sprintf("tb: connection refused: %s (reason 0x%02X)", connackText(e.Code), e.Reason)
	}
	return fmt.Sprintf("tb: connection refused: %s (code %d)", connackText(e.Code), e.Code)
}

// Permanent reports whether retrying with the same credentials is pointless.
func (e *ConnectError) Permanent() bool { return e.Code == 2 || e.Code == 4 || e.Code == 5 }

func connackText(code byte) string {
	switch code {
	case 1:
		return "unacceptable protocol version"
	case 2:
		return "client identifier rejected"
	case 3:
		return "server unavailable"
	case 4:
		return "bad user name or password"
	case 5:
		return "not authorized (wrong access token or credentials)"
	}
	return "unknown reason"
}

// RPCError is an error reply to a client-side RPC, such as ThingsBoard's
// {"error":"timeout"} when no rule chain answered.
type RPCError struct {
	Method  string
	Message string
}

func (e *RPCError) Error() string {
	return fmt.Sprintf("tb: rpc %q: server replied with error %q", e.Method, e.Message)
}

// HandlerPanicError reports a handler that panicked; the client recovered.
type HandlerPanicError struct {
	Handler string
	Value   any
}

func (e *HandlerPanicError) Error() string {
	return fmt.Sprintf("tb: %s handler panicked: %v", e.Handler, e.Value)
}

// MQTT 5 reason codes ThingsBoard sends in PUBACK and DISCONNECT packets.
const (
	ReasonUnspecified        byte = 0x80
	ReasonImplementation     byte = 0x83
	ReasonSessionTakenOver   byte = 0x8E
	ReasonTopicNameInvalid   byte = 0x90
	ReasonMessageRateTooHigh byte = 0x96
	ReasonQuotaExceeded      byte = 0x97
	ReasonAdministrative     byte = 0x98
	ReasonPayloadInvalid     byte = 0x99
)

// PublishError is an MQTT 5 PUBACK carrying an error reason code.
type PublishError struct {
	Reason  byte
	Message string // the server's reason string, if any
}

func (e *PublishError) Error() string {
	s := fmt.Sprintf("tb: server refused the message: %s (reason 0x%02X)", reasonText(e.Reason), e.Reason)
	if e.Message != "" {
		s += ": " + e.Message
	}
	return s
}

// Permanent reports whether the server will never take the message
// (payload or topic invalid); other refusals are retried.
func (e *PublishError) Permanent() bool {
	return e.Reason == ReasonPayloadInvalid || e.Reason == ReasonTopicNameInvalid
}

// DisconnectError is an MQTT 5 DISCONNECT sent by the server.
type DisconnectError struct {
	Reason  byte
	Message string
}

func (e *DisconnectError) Error() string {
	switch e.Reason {
	case ReasonSessionTakenOver:
		return "tb: session taken over: another connection uses the same device credentials (reason 0x8E)"
	case ReasonAdministrative:
		return "tb: disconnected by the server (administrative action) (reason 0x98)"
	}
	s := fmt.Sprintf("tb: disconnected by the server: %s (reason 0x%02X)", reasonText(e.Reason), e.Reason)
	if e.Message != "" {
		s += ": " + e.Message
	}
	return s
}

// DeadLetterError completes the Ack of a message the server will never
// take: it was moved out of the outbox into the dead-letter store.
type DeadLetterError struct {
	Seq    uint64
	Topic  string
	Reason string
	// Code is the MQTT 5 reason code, 0 when the client decided (MQTT
	// 3.1.1: the server closed the connection on the message repeatedly).
	Code byte
}

func (e *DeadLetterError) Error() string {
	return fmt.Sprintf("tb: message %d on %q dead-lettered: %s", e.Seq, e.Topic, e.Reason)
}

// Is makes errors.Is(err, ErrDeadLetter) true.
func (e *DeadLetterError) Is(target error) bool { return target == ErrDeadLetter }

// ErrDeadLetter matches every *DeadLetterError.
var ErrDeadLetter = errors.New("tb: message dead-lettered")

func reasonText(code byte) string {
	switch code {
	case 0x80:
		return "unspecified error"
	case 0x81:
		return "malformed packet"
	case 0x82:
		return "protocol error"
	case 0x83:
		return "implementation specific error"
	case 0x87:
		return "not authorized"
	case 0x89:
		return "server busy"
	case 0x8B:
		return "server shutting down"
	case 0x8E:
		return "session taken over"
	case 0x90:
		return "topic name invalid"
	case 0x96:
		return "message rate too high"
	case 0x97:
		return "quota exceeded"
	case 0x98:
		return "administrative action"
	case 0x99:
		return "payload format invalid"
	case 0xA0:
		return "maximum connect time"
	}
	return "error"
}
