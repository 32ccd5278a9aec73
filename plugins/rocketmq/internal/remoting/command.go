// Package remoting speaks RocketMQ's remoting protocol: length-prefixed
// frames carrying a JSON header and an opaque body. The plugin's consumer and
// the test fake (rmqfake) share it; rocketmq-client-go keeps its own codec
// in an internal package that other modules cannot import.
//
// A frame is
//
//	int32 length      4 + header length + body length
//	int32 header word high byte: serialization (0 = JSON); low 24 bits: header length
//	header            JSON {code, language, version, opaque, flag, remark, extFields}
//	body
//
// all big-endian. A response echoes the request's opaque and sets flag bit 0;
// flag bit 1 marks a one-way request that gets no response.
package remoting

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
)

// Flag bits.
const (
	FlagResponse int32 = 1 << 0
	FlagOneway   int32 = 1 << 1
)

// protocolVersion is what the commands we send claim; brokers only compare
// it against very old versions.
const protocolVersion = 317

// MaxFrame bounds a frame this package reads. RocketMQ's own default is
// 16 MiB; a pull of 32 messages of 4 MiB each fits under 256 MiB.
const MaxFrame = 256 << 20

// Command is one remoting request or response.
type Command struct {
	Code      int16             `json:"code"`
	Language  string            `json:"language"`
	Version   int16             `json:"version"`
	Opaque    int32             `json:"opaque"`
	Flag      int32             `json:"flag"`
	Remark    string            `json:"remark,omitempty"`
	ExtFields map[string]string `json:"extFields,omitempty"`
	Body      []byte            `json:"-"`
}

// IsResponse reports whether c answers a request.
func (c *Command) IsResponse() bool { return c.Flag&FlagResponse != 0 }

// IsOneway reports whether c is a request that expects no answer.
func (c *Command) IsOneway() bool { return c.Flag&FlagOneway != 0 }

// NewRequest builds a request; Conn.Invoke fills in the opaque.
func NewRequest(code int16, fields map[string]string, body []byte) *Command {
	return &Command{Code: code, Language: "GO", Version: protocolVersion, ExtFields: fields, Body: body}
}

// NewResponse builds the answer to req.
func NewResponse(req *Command, code int16, remark string, fields map[string]string, body []byte) *Command {
	return &Command{
		Code: code, Language: "GO", Version: protocolVersion, Opaque: req.Opaque,
		Flag: FlagResponse, Remark: remark, ExtFields: fields, Body: body,
	}
}

// Encode returns c as one frame.
func (c *Command) Encode() ([]byte, error) {
	header, err := json.Marshal(c)
	if err != nil {
		return nil, err
	}
	if len(header) > 0xFFFFFF {
		return nil, fmt.Errorf("remoting: header of %d bytes exceeds 16 MiB", len(header))
	}
	n := 4 + len(header) + len(c.Body)
	buf := make([]byte, 8, 4+n)
	binary.BigEndian.PutUint32(buf[0:4], uint32(n))
	binary.BigEndian.PutUint32(buf[4:8], uint32(len(header))) // serialization 0: JSON
	buf = append(buf, header...)
	return append(buf, c.Body...), nil
}

// ReadCommand reads one frame. It refuses frames over maxFrame bytes and
// headers in any serialization but JSON.
func ReadCommand(r *bufio.Reader, maxFrame int) (*Command, error) {
	var word [8]byte
	if _, err := io.ReadFull(r, word[:4]); err != nil {
		return nil, err
	}
	n := int(binary.BigEndian.Uint32(word[:4]))
	if n < 4 || n > maxFrame {
		return nil, fmt.Errorf("remoting: frame length %d outside 4..%d", n, maxFrame)
	}
	if _, err := io.ReadFull(r, word[4:8]); err != nil {
		return nil, noEOF(err)
	}
	hw := binary.BigEndian.Uint32(word[4:8])
	if ser := hw >> 24; ser != 0 {
		return nil, fmt.Errorf("remoting: header serialization %d not supported (only 0, JSON)", ser)
	}
	hl := int(hw & 0xFFFFFF)
	if hl > n-4 {
		return nil, fmt.Errorf("remoting: header length %d exceeds frame length %d", hl, n)
	}
	frame := make([]byte, n-4)
	if _, err := io.ReadFull(r, frame); err != nil {
		return nil, noEOF(err)
	}
	c := new(Command)
	if err := json.Unmarshal(frame[:hl], c); err != nil {
		return nil, fmt.Errorf("remoting: header: %w", err)
	}
	if len(frame) > hl {
		c.Body = frame[hl:]
	}
	return c, nil
}

func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}
