package codec

import (
	"crypto/rand"
	"fmt"

	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/converter"
	"google.golang.org/protobuf/proto"
)

const (
	// EncodingEncrypted is the "encoding" metadata value of payloads this codec encrypted.
	EncodingEncrypted = "binary/encrypted"
	// MetadataKeyID is the metadata key naming the key a payload was encrypted with.
	MetadataKeyID = "encryption-key-id"
	// MetadataCipher is the metadata key naming the cipher, so that a future cipher can be told
	// apart from this one without guessing.
	MetadataCipher = "encryption-cipher"
	// CipherAES256GCM is the only MetadataCipher value this codec writes.
	CipherAES256GCM = "AES256-GCM"
)

// Codec is a converter.PayloadCodec that encrypts whole payloads (data and metadata, so that
// even the original encoding stays private) with the keyring's active key.
type Codec struct {
	keys *Keyring
}

var _ converter.PayloadCodec = (*Codec)(nil)

// NewCodec returns a codec that encrypts with k's active key and decrypts with any of its keys.
func NewCodec(k *Keyring) *Codec { return &Codec{keys: k} }

// NewDataConverter returns the default Temporal data converter with every payload encrypted.
func NewDataConverter(k *Keyring) converter.DataConverter {
	return converter.NewCodecDataConverter(converter.GetDefaultDataConverter(), NewCodec(k))
}

// Encode encrypts every payload.
func (c *Codec) Encode(payloads []*commonpb.Payload) ([]*commonpb.Payload, error) {
	id := c.keys.active
	aead := c.keys.aeads[id]
	out := make([]*commonpb.Payload, len(payloads))
	for i, p := range payloads {
		plain, err := proto.Marshal(p)
		if err != nil {
			return payloads, fmt.Errorf("encrypt payload: marshal: %w", err)
		}
		nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+len(plain)+aead.Overhead())
		if _, err := rand.Read(nonce); err != nil {
			return payloads, fmt.Errorf("encrypt payload: read nonce: %w", err)
		}
		out[i] = &commonpb.Payload{
			Metadata: map[string][]byte{
				converter.MetadataEncoding: []byte(EncodingEncrypted),
				MetadataKeyID:              []byte(id),
				MetadataCipher:             []byte(CipherAES256GCM),
			},
			Data: aead.Seal(nonce, nonce, plain, nil),
		}
	}
	return out, nil
}

// Decode decrypts the payloads this codec encrypted and passes every other payload through
// untouched, so histories written before encryption was turned on stay readable.
func (c *Codec) Decode(payloads []*commonpb.Payload) ([]*commonpb.Payload, error) {
	out := make([]*commonpb.Payload, len(payloads))
	for i, p := range payloads {
		if string(p.GetMetadata()[converter.MetadataEncoding]) != EncodingEncrypted {
			out[i] = p
			continue
		}
		decoded, err := c.decrypt(p)
		if err != nil {
			return payloads, fmt.Errorf("decrypt payload: %w", err)
		}
		out[i] = decoded
	}
	return out, nil
}

func (c *Codec) decrypt(p *commonpb.Payload) (*commonpb.Payload, error) {
	if cipherName := string(p.Metadata[MetadataCipher]); cipherName != "" && cipherName != CipherAES256GCM {
		return nil, fmt.Errorf("unsupported cipher %q, want %q", cipherName, CipherAES256GCM)
	}
	id := string(p.Metadata[MetadataKeyID])
	if id == "" {
		return nil, fmt.Errorf("metadata %q is missing", MetadataKeyID)
	}
	aead, err := c.keys.aead(id)
	if err != nil {
		return nil, err
	}
	if len(p.Data) < aead.NonceSize()+aead.Overhead() {
		return nil, fmt.Errorf("ciphertext of %d bytes is too short to hold a nonce and a tag", len(p.Data))
	}
	nonce, sealed := p.Data[:aead.NonceSize()], p.Data[aead.NonceSize():]
	plain, err := aead.Open(nil, nonce, sealed, nil)
	if err != nil {
		return nil, fmt.Errorf("with key %q: %w (the payload was altered or the key is wrong)", id, err)
	}
	var decoded commonpb.Payload
	if err := proto.Unmarshal(plain, &decoded); err != nil {
		return nil, fmt.Errorf("with key %q: unmarshal: %w", id, err)
	}
	return &decoded, nil
}
