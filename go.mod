module github.com/f8e615c8/gomemcached

go 1.26

require (
	github.com/bradfitz/gomemcache v0.0.0-20260422231931-4d751bb6e37c
	github.com/couchbase/gomemcached v0.3.4
	github.com/golang/snappy v1.0.0
	github.com/google/flatbuffers v24.3.25+incompatible
	github.com/xdg-go/scram v1.4.0
)

require (
	github.com/couchbase/goutils v0.1.2 // indirect
	github.com/google/uuid v1.6.0 // indirect
	github.com/pkg/errors v0.9.1 // indirect
	github.com/xdg-go/stringprep v1.0.4 // indirect
	golang.org/x/crypto v0.32.0 // indirect
	golang.org/x/text v0.21.0 // indirect
)
