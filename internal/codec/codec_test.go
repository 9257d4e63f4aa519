package codec_test

import (
	"bytes"
	"encoding/base64"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/converter"
	"google.golang.org/protobuf/proto"

	"kok.dev/internal/codec"
)

const secret = "-----BEGIN PRIVATE KEY----- s3cr3t"

func testKeyring(t *testing.T, active string, ids ...string) *codec.Keyring {
	t.Helper()
	keys := map[string][]byte{}
	for i, id := range ids {
		keys[id] = bytes.Repeat([]byte{byte(i + 1)}, codec.KeySize)
	}
	k, err := codec.NewKeyring(active, keys)
	require.NoError(t, err)
	return k
}

func plainPayload(t *testing.T, v any) *commonpb.Payload {
	t.Helper()
	p, err := converter.GetDefaultDataConverter().ToPayload(v)
	require.NoError(t, err)
	return p
}

func TestRoundTrip(t *testing.T) {
	c := codec.NewCodec(testKeyring(t, "a", "a"))
	in := []*commonpb.Payload{plainPayload(t, secret), plainPayload(t, map[string]int{"n": 1}), plainPayload(t, nil)}

	enc, err := c.Encode(in)
	require.NoError(t, err)
	require.Len(t, enc, len(in))
	for _, p := range enc {
		require.Equal(t, codec.EncodingEncrypted, string(p.Metadata[converter.MetadataEncoding]))
		require.Equal(t, "a", string(p.Metadata[codec.MetadataKeyID]))
		require.NotContains(t, string(p.Data), "s3cr3t")
		require.NotContains(t, string(p.Data), "json/plain", "the original encoding is private too")
	}

	dec, err := c.Decode(enc)
	require.NoError(t, err)
	for i := range in {
		require.True(t, proto.Equal(in[i], dec[i]), "payload %d: got %v want %v", i, dec[i], in[i])
	}
}

func TestEncodeUsesFreshNonces(t *testing.T) {
	c := codec.NewCodec(testKeyring(t, "a", "a"))
	p := plainPayload(t, secret)
	enc, err := c.Encode([]*commonpb.Payload{p, p})
	require.NoError(t, err)
	require.NotEqual(t, enc[0].Data, enc[1].Data)
}

func TestDataConverterRoundTrip(t *testing.T) {
	dc := codec.NewDataConverter(testKeyring(t, "a", "a"))
	p, err := dc.ToPayload(secret)
	require.NoError(t, err)
	require.NotContains(t, string(p.Data), "s3cr3t")
	var got string
	require.NoError(t, dc.FromPayload(p, &got))
	require.Equal(t, secret, got)
}

func TestTamperedPayloadIsRefused(t *testing.T) {
	c := codec.NewCodec(testKeyring(t, "a", "a"))
	enc, err := c.Encode([]*commonpb.Payload{plainPayload(t, secret)})
	require.NoError(t, err)

	flipped := proto.Clone(enc[0]).(*commonpb.Payload)
	flipped.Data[len(flipped.Data)-1] ^= 0x01
	_, err = c.Decode([]*commonpb.Payload{flipped})
	require.ErrorContains(t, err, "message authentication failed")

	truncated := proto.Clone(enc[0]).(*commonpb.Payload)
	truncated.Data = truncated.Data[:10]
	_, err = c.Decode([]*commonpb.Payload{truncated})
	require.ErrorContains(t, err, "too short")

	noKeyID := proto.Clone(enc[0]).(*commonpb.Payload)
	delete(noKeyID.Metadata, codec.MetadataKeyID)
	_, err = c.Decode([]*commonpb.Payload{noKeyID})
	require.ErrorContains(t, err, codec.MetadataKeyID)
}

func TestWrongKeyIsRefused(t *testing.T) {
	enc, err := codec.NewCodec(testKeyring(t, "a", "a")).Encode([]*commonpb.Payload{plainPayload(t, secret)})
	require.NoError(t, err)

	// Same ID, different key material: authentication must fail rather than yield garbage.
	other, err := codec.NewKeyring("a", map[string][]byte{"a": bytes.Repeat([]byte{9}, codec.KeySize)})
	require.NoError(t, err)
	_, err = codec.NewCodec(other).Decode(enc)
	require.ErrorContains(t, err, `with key "a"`)
	require.ErrorContains(t, err, "message authentication failed")
}

func TestUnknownKeyIDNamesIt(t *testing.T) {
	enc, err := codec.NewCodec(testKeyring(t, "old", "old")).Encode([]*commonpb.Payload{plainPayload(t, secret)})
	require.NoError(t, err)
	_, err = codec.NewCodec(testKeyring(t, "new", "new")).Decode(enc)
	require.ErrorContains(t, err, `key "old"`)
	require.ErrorContains(t, err, "holds new")
}

func TestPlainPayloadsPassThroughDecode(t *testing.T) {
	c := codec.NewCodec(testKeyring(t, "a", "a"))
	in := []*commonpb.Payload{plainPayload(t, "hello"), {Metadata: map[string][]byte{converter.MetadataEncoding: []byte("binary/zlib")}, Data: []byte{1, 2}}}
	out, err := c.Decode(in)
	require.NoError(t, err)
	require.Same(t, in[0], out[0])
	require.Same(t, in[1], out[1])
}

func TestRotation(t *testing.T) {
	path := filepath.Join(t.TempDir(), "codec-keys.json")
	require.NoError(t, codec.GenerateKeyFile(path))
	before, err := codec.LoadKeyring(path)
	require.NoError(t, err)
	oldEnc, err := codec.NewCodec(before).Encode([]*commonpb.Payload{plainPayload(t, secret)})
	require.NoError(t, err)

	newID, err := codec.RotateKeyFile(path)
	require.NoError(t, err)
	require.NotEqual(t, before.ActiveKeyID(), newID)

	after, err := codec.LoadKeyring(path)
	require.NoError(t, err)
	require.Equal(t, newID, after.ActiveKeyID())
	require.ElementsMatch(t, []string{before.ActiveKeyID(), newID}, after.KeyIDs())

	c := codec.NewCodec(after)
	dec, err := c.Decode(oldEnc)
	require.NoError(t, err, "payloads written before the rotation stay readable")
	var got string
	require.NoError(t, converter.GetDefaultDataConverter().FromPayload(dec[0], &got))
	require.Equal(t, secret, got)

	newEnc, err := c.Encode([]*commonpb.Payload{plainPayload(t, secret)})
	require.NoError(t, err)
	require.Equal(t, newID, string(newEnc[0].Metadata[codec.MetadataKeyID]))

	info, err := os.Stat(path)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), info.Mode().Perm())
}

func TestGenerateKeyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "codec-keys.json")
	require.NoError(t, codec.GenerateKeyFile(path))
	info, err := os.Stat(path)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), info.Mode().Perm())
	k, err := codec.LoadKeyring(path)
	require.NoError(t, err)
	require.Len(t, k.KeyIDs(), 1)

	original, err := os.ReadFile(path)
	require.NoError(t, err)
	require.ErrorContains(t, codec.GenerateKeyFile(path), "already exists")
	unchanged, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Equal(t, original, unchanged)
}

func TestLoadKeyringErrors(t *testing.T) {
	key := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{1}, codec.KeySize))
	short := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{1}, 16))
	for name, tc := range map[string]struct{ content, want string }{
		"not json":       {`active: a`, "not valid JSON"},
		"unknown field":  {`{"active":"a","keys":{"a":"` + key + `"},"extra":1}`, `unknown field "extra"`},
		"no keys":        {`{"active":"a","keys":{}}`, `"keys" is empty`},
		"no active":      {`{"keys":{"a":"` + key + `"}}`, `"active" is empty`},
		"active missing": {`{"active":"b","keys":{"a":"` + key + `"}}`, `active key "b" is not among the keys`},
		"bad base64":     {`{"active":"a","keys":{"a":"not*base64"}}`, `key "a" is not standard base64`},
		"short key":      {`{"active":"a","keys":{"a":"` + short + `"}}`, `key "a" is 16 bytes long, want 32`},
		"bad key id":     {`{"active":"a b","keys":{"a b":"` + key + `"}}`, `key ID "a b" is invalid`},
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "keys.json")
			require.NoError(t, os.WriteFile(path, []byte(tc.content), 0o600))
			_, err := codec.LoadKeyring(path)
			require.ErrorContains(t, err, tc.want)
			require.ErrorContains(t, err, path)
		})
	}

	_, err := codec.LoadKeyring(filepath.Join(t.TempDir(), "missing.json"))
	require.ErrorContains(t, err, "missing.json")
}
