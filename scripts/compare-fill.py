#!/usr/bin/env python3
# Fills memcached and gocache (each started on a loopback port with -m 32)
# with 400000 sets of 100-byte values and prints what each holds after:
# the slab memory model makes them hold the same items.
# Usage: scripts/compare-fill.py [MEMCACHED_BIN] [GOCACHE_BIN]
import socket, subprocess, sys, time
def run(argv, port):
    p=subprocess.Popen(argv+['-p',str(port),'-U','0','-l','127.0.0.1','-m','32'], stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    s=socket.create_connection(('127.0.0.1',port))
    v=b'v'*100
    buf=bytearray()
    for i in range(400000):
        buf+=b'set key:%07d 0 0 100 noreply\r\n'%i+v+b'\r\n'
        if len(buf)>1<<20: s.sendall(buf); buf=bytearray()
    s.sendall(buf+b'stats\r\nstats slabs\r\n')
    f=s.makefile('rb'); d={}; ends=0
    while ends<2:
        l=f.readline().decode().strip()
        if l=='END': ends+=1; continue
        parts=l.split(' ')
        if len(parts)==3: d[parts[1]]=parts[2]
    p.kill()
    return {k:d.get(k) for k in ['curr_items','evictions','total_malloced','bytes','4:chunk_size','5:chunk_size','4:used_chunks','5:used_chunks']}
mc = sys.argv[1] if len(sys.argv) > 1 else 'memcached'
gc = sys.argv[2] if len(sys.argv) > 2 else '/tmp/gocache'
print('memcached', run([mc,'-u','nobody'], 31001))
print('gocache  ', run([gc], 31002))
