// Package config loads a service's typed configuration with one precedence rule everywhere:
//
//	defaults < YAML file < BROOK_* environment < command-line flags
//
// Keys are the lower-case mapstructure names joined by "." (kafka.brokers, auth.jwt_secret).
// The environment variable of a key is BROOK_ + the key upper-cased with "." replaced by "_"
// (BROOK_KAFKA_BROKERS, BROOK_AUTH_JWT_SECRET). Load derives the variable from the key, never the
// key from the variable, so keys containing "_" map without ambiguity. A flag's name is the key
// itself (--kafka.brokers). Lists ([]string) are comma separated in the environment and in flags.
//
// Every service embeds Base (mapstructure:",squash") to get the contract settings of
// ARCHITECTURE.md with their standard variable names.
package config

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"strings"

	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/pflag"
	"github.com/spf13/viper"
)

// EnvPrefix is prepended to every environment variable name.
const EnvPrefix = "BROOK_"

// Validator is implemented by configuration structs that check themselves after loading.
// Return a *FieldError (see Invalid) so the message names the key and its variable.
type Validator interface {
	Validate() error
}

// FieldError is a bad configuration value. Its message names the key and the environment
// variable that sets it, so the operator knows what to fix.
type FieldError struct {
	Key    string // e.g. kafka.brokers
	Env    string // e.g. BROOK_KAFKA_BROKERS
	Reason string // e.g. must not be empty
	Err    error  // underlying error, if any
}

func (e *FieldError) Error() string {
	return fmt.Sprintf("config: %s: %s (env %s)", e.Key, e.Reason, e.Env)
}

func (e *FieldError) Unwrap() error { return e.Err }

// Invalid returns a *FieldError for key; use it in Validate methods.
func Invalid(key, format string, args ...any) error {
	return &FieldError{Key: key, Env: EnvName(key), Reason: fmt.Sprintf(format, args...)}
}

// EnvName returns the environment variable of key: BROOK_ + upper(key) with "." -> "_".
func EnvName(key string) string {
	return EnvPrefix + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
}

// Option configures Load.
type Option func(*loader)

type loader struct {
	file     string
	defaults any
	flags    *pflag.FlagSet
	lookup   func(string) (string, bool)
}

// WithFile reads a YAML file between defaults and the environment. An empty path is ignored;
// a path that was given but cannot be read is an error, as is a key the struct does not have.
func WithFile(path string) Option { return func(l *loader) { l.file = path } }

// WithDefaults sets the defaults: a value (or pointer) of the destination's type. Without it,
// the destination's current field values are the defaults.
func WithDefaults(v any) Option { return func(l *loader) { l.defaults = v } }

// WithFlags applies the flags of fs that were set on the command line (fs.Changed) last.
// Only flags named like a key count (see AddFlags); other flags are ignored.
func WithFlags(fs *pflag.FlagSet) Option { return func(l *loader) { l.flags = fs } }

// WithEnv replaces os.LookupEnv, for tests.
func WithEnv(lookup func(string) (string, bool)) Option {
	return func(l *loader) { l.lookup = lookup }
}

// Load fills dst, a pointer to a struct, from defaults < file < environment < flags, then calls
// dst.Validate() when dst implements Validator. On error dst is left unchanged.
func Load(dst any, opts ...Option) error {
	l := &loader{lookup: os.LookupEnv}
	for _, o := range opts {
		o(l)
	}
	rv := reflect.ValueOf(dst)
	if rv.Kind() != reflect.Pointer || rv.IsNil() || rv.Elem().Kind() != reflect.Struct {
		return fmt.Errorf("config: Load needs a non-nil pointer to a struct, got %T", dst)
	}
	target := rv.Elem()
	defaults := target
	if l.defaults != nil {
		dv := reflect.Indirect(reflect.ValueOf(l.defaults))
		if dv.Type() != target.Type() {
			return fmt.Errorf("config: defaults are %s, want %s", dv.Type(), target.Type())
		}
		defaults = dv
	}

	fields, err := leaves(target.Type())
	if err != nil {
		return err
	}
	byKey := make(map[string]field, len(fields))
	for _, f := range fields {
		byKey[f.key] = f
	}

	v := viper.New()
	for _, f := range fields {
		if dv := defaults.FieldByIndex(f.index); !dv.IsZero() {
			v.SetDefault(f.key, dv.Interface())
		}
	}
	if l.file != "" {
		if err := readFile(v, l.file, fields); err != nil {
			return err
		}
	}
	for _, f := range fields {
		if s, ok := l.lookup(f.env); ok {
			v.Set(f.key, envValue(s, f.typ))
		}
	}
	if l.flags != nil {
		l.flags.Visit(func(fl *pflag.Flag) {
			f, ok := byKey[strings.ToLower(fl.Name)]
			if !ok {
				return
			}
			if sv, ok := fl.Value.(pflag.SliceValue); ok {
				v.Set(f.key, sv.GetSlice())
				return
			}
			v.Set(f.key, envValue(fl.Value.String(), f.typ))
		})
	}

	fresh := reflect.New(target.Type())
	if err := v.Unmarshal(fresh.Interface()); err != nil {
		return decodeError(err, byKey)
	}
	if val, ok := fresh.Interface().(Validator); ok {
		if err := val.Validate(); err != nil {
			var fe *FieldError
			if errors.As(err, &fe) {
				if fe.Env == "" {
					fe.Env = EnvName(fe.Key)
				}
				return err
			}
			return fmt.Errorf("config: %w", err)
		}
	}
	target.Set(fresh.Elem())
	return nil
}

// AddFlags defines one flag per key of cfg (a struct or pointer to one) on fs, named like the
// key, with cfg's values as shown defaults and the environment variable in the usage text.
// Pass the same fs to WithFlags after fs.Parse.
func AddFlags(fs *pflag.FlagSet, cfg any) error {
	rv := reflect.Indirect(reflect.ValueOf(cfg))
	if rv.Kind() != reflect.Struct {
		return fmt.Errorf("config: AddFlags needs a struct, got %T", cfg)
	}
	fields, err := leaves(rv.Type())
	if err != nil {
		return err
	}
	for _, f := range fields {
		if fs.Lookup(f.key) != nil {
			continue
		}
		usage := "env " + f.env
		fv := rv.FieldByIndex(f.index)
		if f.typ.Kind() == reflect.Slice && f.typ.Elem().Kind() == reflect.String {
			fs.StringSlice(f.key, fv.Interface().([]string), usage)
			continue
		}
		def := ""
		if !fv.IsZero() {
			def = fmt.Sprint(fv.Interface())
		}
		fs.String(f.key, def, usage)
	}
	return nil
}

func readFile(v *viper.Viper, path string, fields []field) error {
	v.SetConfigFile(path)
	if !strings.HasSuffix(path, ".yaml") && !strings.HasSuffix(path, ".yml") {
		v.SetConfigType("yaml")
	}
	if err := v.ReadInConfig(); err != nil {
		return fmt.Errorf("config: read %s: %w", path, err)
	}
	// Reject keys the struct does not have: a typo must not be silently ignored. v.AllKeys()
	// holds the defaults (all of them field keys) plus the file's keys, so any unknown key
	// came from the file.
	for _, k := range v.AllKeys() {
		if !known(k, fields) {
			return fmt.Errorf("config: %s: unknown key %q", path, k)
		}
	}
	return nil
}

func known(key string, fields []field) bool {
	for _, f := range fields {
		if key == f.key || (f.typ.Kind() == reflect.Map && strings.HasPrefix(key, f.key+".")) {
			return true
		}
	}
	return false
}

// envValue converts a string from the environment or a flag: lists are split on commas and
// trimmed (empty items dropped); everything else is left to mapstructure's weak decoding.
func envValue(s string, t reflect.Type) any {
	if t.Kind() != reflect.Slice {
		return s
	}
	out := []string{}
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func decodeError(err error, byKey map[string]field) error {
	var de *mapstructure.DecodeError
	if errors.As(err, &de) {
		key := strings.ToLower(de.Name())
		if _, ok := byKey[key]; ok {
			return &FieldError{Key: key, Env: EnvName(key), Reason: de.Unwrap().Error(), Err: err}
		}
	}
	return fmt.Errorf("config: decode: %w", err)
}

// field is one leaf setting of a configuration struct.
type field struct {
	key   string
	env   string
	typ   reflect.Type
	index []int
}

// leaves lists the leaf settings of struct type t, following mapstructure's rules: the tag
// name (or the lower-cased field name), ",squash" embeds without a prefix, "-" skips.
func leaves(t reflect.Type) ([]field, error) {
	var out []field
	seenEnv := map[string]string{}
	var walk func(t reflect.Type, prefix string, index []int) error
	walk = func(t reflect.Type, prefix string, index []int) error {
		for i := 0; i < t.NumField(); i++ {
			sf := t.Field(i)
			if !sf.IsExported() {
				continue
			}
			name, opts, _ := strings.Cut(sf.Tag.Get("mapstructure"), ",")
			if name == "-" {
				continue
			}
			idx := append(append([]int(nil), index...), i)
			ft := sf.Type
			if strings.Contains(opts, "squash") || (sf.Anonymous && name == "") {
				if ft.Kind() != reflect.Struct {
					return fmt.Errorf("config: squashed field %s is not a struct", sf.Name)
				}
				if err := walk(ft, prefix, idx); err != nil {
					return err
				}
				continue
			}
			if name == "" {
				name = sf.Name
			}
			key := strings.ToLower(prefix + name)
			if ft.Kind() == reflect.Struct {
				if err := walk(ft, key+".", idx); err != nil {
					return err
				}
				continue
			}
			env := EnvName(key)
			if other, dup := seenEnv[env]; dup {
				return fmt.Errorf("config: keys %q and %q both map to %s", other, key, env)
			}
			seenEnv[env] = key
			out = append(out, field{key: key, env: env, typ: ft, index: idx})
		}
		return nil
	}
	if err := walk(t, "", nil); err != nil {
		return nil, err
	}
	return out, nil
}
