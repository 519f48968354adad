module github.com/f8e615c8/gomemcached

go 1.26

require github.com/couchbase/gomemcached v0.3.4
