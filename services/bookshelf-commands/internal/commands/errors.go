package commands

import (
	"context"
	"errors"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/brook-dev/brook/kit/store"
	"github.com/brook-dev/brook/services/bookshelf-commands/internal/book"
)

// toStatus maps errors to gRPC statuses; kit/service turns them into HTTP statuses and JSON
// {"code","message","field"}: invalid input 400 naming the field, unknown or removed book 404,
// version conflict 409 (Aborted), idempotency key reused for another request 409
// (AlreadyExists). Anything else is Internal, logged by kit/service and not shown to clients.
func toStatus(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	var ve *book.ValidationError
	var bc *book.ConflictError
	var sc *store.ConflictError
	switch {
	case errors.As(err, &ve):
		st := status.New(codes.InvalidArgument, err.Error())
		br := &errdetails.BadRequest{}
		for _, v := range ve.Violations {
			br.FieldViolations = append(br.FieldViolations,
				&errdetails.BadRequest_FieldViolation{Field: v.Field, Description: v.Description})
		}
		if withDetails, derr := st.WithDetails(br); derr == nil {
			st = withDetails
		}
		return st.Err()
	case errors.Is(err, book.ErrNotFound):
		return status.Error(codes.NotFound, err.Error())
	case errors.As(err, &bc):
		return status.Error(codes.Aborted, err.Error())
	case errors.As(err, &sc):
		return status.Errorf(codes.Aborted, "book %s was changed concurrently (version %d, expected %d); retry", sc.Stream, sc.Actual, sc.Expected)
	case errors.Is(err, errKeyReused):
		return status.Error(codes.AlreadyExists, err.Error())
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return status.FromContextError(err).Err()
	case errors.Is(err, store.ErrClosed):
		return status.Error(codes.Unavailable, "shutting down")
	}
	return status.Error(codes.Internal, err.Error())
}
