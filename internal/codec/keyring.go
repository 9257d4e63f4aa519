package codec

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"
)

// KeySize is the length of every key in bytes: AES-256.
const KeySize = 32

// maxKeyIDLength keeps key IDs short because every encrypted payload carries one.
const maxKeyIDLength = 64

var keyIDPattern = regexp.MustCompile(`^[A-Za-z0-9._-]+$`)

// keyFile is the on-disk form of a keyring (see the package documentation).
type keyFile struct {
	Active string            `json:"active"`
	Keys   map[string]string `json:"keys"`
}

// Keyring holds the keys a codec may decrypt with and names the one it encrypts with.
// It is safe for concurrent use: it never changes after construction.
type Keyring struct {
	active string
	aeads  map[string]cipher.AEAD
}

// NewKeyring builds a keyring from raw keys. active names the key new payloads are encrypted
// with; the others only decrypt.
func NewKeyring(active string, keys map[string][]byte) (*Keyring, error) {
	if active == "" {
		return nil, errors.New("no active key ID")
	}
	if _, ok := keys[active]; !ok {
		return nil, fmt.Errorf("active key %q is not among the keys", active)
	}
	k := &Keyring{active: active, aeads: make(map[string]cipher.AEAD, len(keys))}
	for id, key := range keys {
		if err := validateKeyID(id); err != nil {
			return nil, err
		}
		if len(key) != KeySize {
			return nil, fmt.Errorf("key %q is %d bytes long, want %d (AES-256)", id, len(key), KeySize)
		}
		block, err := aes.NewCipher(key)
		if err != nil {
			return nil, fmt.Errorf("key %q: %w", id, err)
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, fmt.Errorf("key %q: %w", id, err)
		}
		k.aeads[id] = aead
	}
	return k, nil
}

// ActiveKeyID names the key new payloads are encrypted with.
func (k *Keyring) ActiveKeyID() string { return k.active }

// KeyIDs lists every key the keyring can decrypt with, sorted.
func (k *Keyring) KeyIDs() []string {
	ids := make([]string, 0, len(k.aeads))
	for id := range k.aeads {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

func (k *Keyring) aead(id string) (cipher.AEAD, error) {
	a, ok := k.aeads[id]
	if !ok {
		return nil, fmt.Errorf("payload was encrypted with key %q, which the key file does not hold (it holds %s): restore that key to the file",
			id, strings.Join(k.KeyIDs(), ", "))
	}
	return a, nil
}

// LoadKeyring reads a key file.
func LoadKeyring(path string) (*Keyring, error) {
	f, err := readKeyFile(path)
	if err != nil {
		return nil, err
	}
	k, err := f.keyring()
	if err != nil {
		return nil, fmt.Errorf("key file %s: %w", path, err)
	}
	return k, nil
}

// GenerateKeyFile writes a new key file holding one random key. It refuses to overwrite an
// existing file: losing a key makes every history encrypted with it unreadable.
func GenerateKeyFile(path string) error {
	id, key, err := newKey()
	if err != nil {
		return err
	}
	data, err := keyFile{Active: id, Keys: map[string]string{id: key}}.marshal()
	if err != nil {
		return err
	}
	out, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		if errors.Is(err, os.ErrExist) {
			return fmt.Errorf("key file %s already exists; refusing to overwrite it (use rotate to add a key)", path)
		}
		return fmt.Errorf("create key file: %w", err)
	}
	if _, err := out.Write(data); err != nil {
		_ = out.Close()
		_ = os.Remove(path)
		return fmt.Errorf("write key file %s: %w", path, err)
	}
	if err := out.Close(); err != nil {
		_ = os.Remove(path)
		return fmt.Errorf("write key file %s: %w", path, err)
	}
	return nil
}

// RotateKeyFile adds a new random key to an existing key file and makes it the active one. Old
// keys stay so that payloads written before the rotation can still be decrypted. It returns the
// new key's ID. Processes that loaded the file before must be restarted to pick up the new key.
func RotateKeyFile(path string) (string, error) {
	f, err := readKeyFile(path)
	if err != nil {
		return "", err
	}
	if _, err := f.keyring(); err != nil {
		return "", fmt.Errorf("key file %s: %w", path, err)
	}
	id, key, err := newKey()
	if err != nil {
		return "", err
	}
	if _, taken := f.Keys[id]; taken {
		return "", fmt.Errorf("key file %s already holds a key %q; try again", path, id)
	}
	f.Keys[id] = key
	f.Active = id
	data, err := f.marshal()
	if err != nil {
		return "", err
	}
	if err := replaceFile(path, data); err != nil {
		return "", err
	}
	return id, nil
}

func readKeyFile(path string) (keyFile, error) {
	var f keyFile
	data, err := os.ReadFile(path)
	if err != nil {
		return f, fmt.Errorf("read key file: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return f, fmt.Errorf("key file %s is not valid JSON of the form {\"active\": ID, \"keys\": {ID: base64}}: %w", path, err)
	}
	return f, nil
}

func (f keyFile) keyring() (*Keyring, error) {
	if len(f.Keys) == 0 {
		return nil, errors.New(`"keys" is empty`)
	}
	raw := make(map[string][]byte, len(f.Keys))
	for id, encoded := range f.Keys {
		key, err := base64.StdEncoding.DecodeString(encoded)
		if err != nil {
			return nil, fmt.Errorf("key %q is not standard base64: %w", id, err)
		}
		raw[id] = key
	}
	if f.Active == "" {
		return nil, errors.New(`"active" is empty: name the key to encrypt with`)
	}
	return NewKeyring(f.Active, raw)
}

func (f keyFile) marshal() ([]byte, error) {
	data, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode key file: %w", err)
	}
	return append(data, '\n'), nil
}

// newKey returns a fresh random key and its ID. The ID starts with the UTC date so that people
// can tell keys apart by age; the random suffix keeps two rotations on one day distinct.
func newKey() (id, key string, err error) {
	buf := make([]byte, KeySize+4)
	if _, err := rand.Read(buf); err != nil {
		return "", "", fmt.Errorf("read random bytes: %w", err)
	}
	id = time.Now().UTC().Format("2006-01-02") + "-" + hex.EncodeToString(buf[KeySize:])
	return id, base64.StdEncoding.EncodeToString(buf[:KeySize]), nil
}

func validateKeyID(id string) error {
	if len(id) > maxKeyIDLength || !keyIDPattern.MatchString(id) {
		return fmt.Errorf("key ID %q is invalid: use 1-%d letters, digits, '.', '_' or '-'", id, maxKeyIDLength)
	}
	return nil
}

// replaceFile swaps in the new content atomically, so that a crash mid-write never leaves a
// truncated key file (and with it unreadable histories).
func replaceFile(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("write key file %s: %w", path, err)
	}
	defer os.Remove(tmp.Name()) // no-op once renamed
	if err := tmp.Chmod(0o600); err != nil {
		_ = tmp.Close()
		return fmt.Errorf("write key file %s: %w", path, err)
	}
	if _, err := tmp.Write(data); err != nil {
		_ = tmp.Close()
		return fmt.Errorf("write key file %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		_ = tmp.Close()
		return fmt.Errorf("write key file %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write key file %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write key file %s: %w", path, err)
	}
	return nil
}
