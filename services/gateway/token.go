package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/brook-dev/brook/kit/config"
	"github.com/brook-dev/brook/services/gateway/internal/auth"
)

// settings is Config without its Validate (the embedded Base's still runs), so that minting a
// token needs only the secret, not a complete serving configuration.
type settings Config

// tokenCommand mints an HS256 development token with auth.jwt_secret (BROOK_AUTH_JWT_SECRET or
// the config file). Issuer and audience default to auth.issuer and auth.audience, so a token
// minted next to a gateway's config is accepted by it.
func tokenCommand(file *string) *cobra.Command {
	var sub, iss, aud string
	var ttl time.Duration
	cmd := &cobra.Command{
		Use:   "token --sub NAME [--ttl 1h] [--aud AUDIENCE] [--iss ISSUER]",
		Short: "Print a development JWT signed with BROOK_AUTH_JWT_SECRET (HS256)",
		Example: `  export BROOK_AUTH_JWT_SECRET=brook-dev-secret
  TOKEN=$(go run ./services/gateway token --sub alice)
  curl -H "Authorization: Bearer $TOKEN" -d '{"title":"Dune","author":"Frank Herbert"}' localhost:8080/v1/books`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s := settings(defaultConfig())
			if err := config.Load(&s, config.WithFile(*file)); err != nil {
				return err
			}
			if s.Auth.JWTSecret == "" {
				return config.Invalid("auth.jwt_secret", "must be set to mint a token (tokens for auth.jwks_url come from your identity provider)")
			}
			if !cmd.Flags().Changed("iss") {
				iss = s.Auth.Issuer
			}
			if !cmd.Flags().Changed("aud") {
				aud = s.Auth.Audience
			}
			tok, err := auth.Mint([]byte(s.Auth.JWTSecret), sub, iss, aud, ttl, time.Now())
			if err != nil {
				return err
			}
			_, err = fmt.Fprintln(cmd.OutOrStdout(), tok)
			return err
		},
	}
	cmd.Flags().StringVar(&sub, "sub", "", "subject (the user the token speaks for); required")
	cmd.Flags().DurationVar(&ttl, "ttl", time.Hour, "validity")
	cmd.Flags().StringVar(&aud, "aud", "", "audience (default auth.audience)")
	cmd.Flags().StringVar(&iss, "iss", "", "issuer (default auth.issuer)")
	_ = cmd.MarkFlagRequired("sub")
	return cmd
}
