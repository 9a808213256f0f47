// Package configfile holds the mechanics shared by skywire's JSON config
// files (visor and hypervisor): strict decoding whose errors name the field,
// atomic writes, and field checks that collect every problem at once.
//
// Strict means: an unknown or misspelled key is an error naming its full path
// ("dmsg.discvery: unknown field (did you mean "discovery"?)"), a value of the
// wrong type names its path, a value rejected by its type's UnmarshalText
// (a bad key, say) names its path, and nothing may follow the top-level
// object.
package configfile

import (
	"bytes"
	"encoding"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"sort"
	"strconv"
	"strings"
)

// ErrUnknownField is wrapped by the error for a key the config does not have.
var ErrUnknownField = errors.New("unknown field")

// FieldError is a problem with one field, named by its JSON path
// (e.g. "apps[2].port", `stcp.pk_table["02ab…"]`).
type FieldError struct {
	Path string
	Err  error
}

func (e *FieldError) Error() string {
	if e.Path == "" {
		return e.Err.Error()
	}
	return e.Path + ": " + e.Err.Error()
}

func (e *FieldError) Unwrap() error { return e.Err }

// Decode strictly decodes the JSON object in data into v (a pointer to a
// struct).
func Decode(data []byte, v any) error {
	if len(bytes.TrimSpace(data)) == 0 {
		return errors.New("the file is empty: it must hold a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	var raw json.RawMessage
	if err := dec.Decode(&raw); err != nil {
		return syntaxError(data, err)
	}
	if _, err := dec.Token(); err == nil {
		return fmt.Errorf("line %d: unexpected data after the top-level object", lineOf(data, dec.InputOffset()))
	}
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return fmt.Errorf("configfile: Decode needs a non-nil pointer, got %T", v)
	}
	if err := check(raw, rv.Type().Elem(), ""); err != nil {
		return err
	}
	// The walk above proved every key and value; this fills v.
	dec = json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}

func syntaxError(data []byte, err error) error {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Errorf("line %d: invalid JSON: %v", lineOf(data, se.Offset), se)
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return errors.New("invalid JSON: the file ends early (truncated?)")
	}
	return fmt.Errorf("invalid JSON: %w", err)
}

func lineOf(data []byte, offset int64) int {
	if offset > int64(len(data)) {
		offset = int64(len(data))
	}
	return bytes.Count(data[:offset], []byte("\n")) + 1
}

var (
	jsonUnmarshaler = reflect.TypeFor[json.Unmarshaler]()
	textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()
)

func implementsUnmarshal(t reflect.Type) bool {
	p := reflect.PointerTo(t)
	return p.Implements(jsonUnmarshaler) || p.Implements(textUnmarshaler)
}

func isNull(raw json.RawMessage) bool { return string(bytes.TrimSpace(raw)) == "null" }

// check walks raw against t and reports the first problem with its path.
func check(raw json.RawMessage, t reflect.Type, path string) error {
	if implementsUnmarshal(t) {
		if err := json.Unmarshal(raw, reflect.New(t).Interface()); err != nil {
			return &FieldError{Path: path, Err: valueError(raw, t, err)}
		}
		return nil
	}
	switch t.Kind() {
	case reflect.Pointer:
		if isNull(raw) {
			return nil
		}
		return check(raw, t.Elem(), path)
	case reflect.Struct:
		if isNull(raw) {
			return nil
		}
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(raw, &obj); err != nil {
			return &FieldError{Path: path, Err: fmt.Errorf("want an object, got %s", kindOf(raw))}
		}
		fields := structFields(t)
		keys := sortedKeys(obj)
		for _, k := range keys {
			f, ok := fields[k]
			if !ok {
				return &FieldError{Path: join(path, k), Err: unknownField(k, fields)}
			}
			if err := check(obj[k], f, join(path, k)); err != nil {
				return err
			}
		}
		return nil
	case reflect.Map:
		if isNull(raw) {
			return nil
		}
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(raw, &obj); err != nil {
			return &FieldError{Path: path, Err: fmt.Errorf("want an object, got %s", kindOf(raw))}
		}
		for _, k := range sortedKeys(obj) {
			kp := path + "[" + strconv.Quote(k) + "]"
			if implementsUnmarshal(t.Key()) {
				key := reflect.New(t.Key()).Interface().(encoding.TextUnmarshaler)
				if err := key.UnmarshalText([]byte(k)); err != nil {
					return &FieldError{Path: kp, Err: fmt.Errorf("bad key: %w", err)}
				}
			}
			if err := check(obj[k], t.Elem(), kp); err != nil {
				return err
			}
		}
		return nil
	case reflect.Slice, reflect.Array:
		if t.Elem().Kind() == reflect.Uint8 || isNull(raw) {
			break // []byte is base64 text; checked below like a scalar.
		}
		var arr []json.RawMessage
		if err := json.Unmarshal(raw, &arr); err != nil {
			return &FieldError{Path: path, Err: fmt.Errorf("want a list, got %s", kindOf(raw))}
		}
		if t.Kind() == reflect.Array && len(arr) != t.Len() {
			return &FieldError{Path: path, Err: fmt.Errorf("want %d items, got %d", t.Len(), len(arr))}
		}
		for i, el := range arr {
			if err := check(el, t.Elem(), fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
		return nil
	case reflect.Interface:
		return nil
	}
	if err := json.Unmarshal(raw, reflect.New(t).Interface()); err != nil {
		return &FieldError{Path: path, Err: valueError(raw, t, err)}
	}
	return nil
}

// valueError turns encoding/json's message into one about the value.
func valueError(raw json.RawMessage, t reflect.Type, err error) error {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return fmt.Errorf("want %s, got %s", describe(t), clip(string(raw)))
	}
	return err
}

func describe(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Bool:
		return "true or false"
	case reflect.String:
		return "a string"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "a whole number"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return fmt.Sprintf("a whole number from 0 to %d", uint64(1)<<(t.Bits())-1)
	case reflect.Float32, reflect.Float64:
		return "a number"
	}
	return t.String()
}

func kindOf(raw json.RawMessage) string {
	s := bytes.TrimSpace(raw)
	if len(s) == 0 {
		return "nothing"
	}
	switch s[0] {
	case '{':
		return "an object"
	case '[':
		return "a list"
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	}
	return "a number"
}

func clip(s string) string {
	if len(s) > 60 {
		return s[:60] + "…"
	}
	return s
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func sortedKeys(m map[string]json.RawMessage) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// structFields maps JSON keys to field types, following encoding/json's
// rules for tags, "-" and embedded structs.
func structFields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		if f.Anonymous && name == "" {
			ft := f.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				for k, v := range structFields(ft) {
					if _, dup := out[k]; !dup {
						out[k] = v
					}
				}
				continue
			}
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		out[name] = f.Type
	}
	return out
}

func unknownField(key string, fields map[string]reflect.Type) error {
	best, bestD := "", 3
	names := make([]string, 0, len(fields))
	for name := range fields {
		names = append(names, name)
		d := distance(strings.ToLower(key), strings.ToLower(name))
		if d < bestD || (d == bestD && name < best) {
			best, bestD = name, d
		}
	}
	if best != "" {
		return fmt.Errorf("%w (did you mean %q?)", ErrUnknownField, best)
	}
	sort.Strings(names)
	return fmt.Errorf("%w (known fields here: %s)", ErrUnknownField, strings.Join(names, ", "))
}

// distance is the Levenshtein edit distance between a and b.
func distance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
