package modbus

import "errors"

func newASCIIClient(cfg *Config) (client, error) {
	return nil, errors.New("ascii framing is not available")
}
