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
)

// ConnectError is a CONNACK refusal from the server.
type ConnectError struct {
	Code byte // MQTT 3.1.1 return code
}

func (e *ConnectError) Error() string {
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
