#!/usr/bin/env python3
"""N idle connections and 1,000 slow clients (headers never finished) held open against a running
`miner node`, then its RSS and the p50/p99 of 300 `getblockcount` calls on a fresh connection.
Usage: scripts/rpc_idle.py NODE_STDERR_LOG NODE_PID N  (start the node with
--rpc-max-connections above N+1000 and --rpc-idle-timeout/--rpc-header-timeout long enough;
the open-file limit must allow N+1000 descriptors in both processes)."""
import socket, time, sys, re, base64, http.client
log=open(sys.argv[1]).read()
addr=re.search(r'listening on http://(\S+)',log).group(1); host,port=addr.rsplit(':',1)
cookie=re.search(r'cookie file (.*)\)',log).group(1)
auth=base64.b64encode(open(cookie).read().strip().encode()).decode()
pid=int(sys.argv[2])
def rss(): return [l for l in open(f'/proc/{pid}/status') if l.startswith('VmRSS')][0].strip()
print('before', rss())
N=int(sys.argv[3]); socks=[]
for i in range(N):
    s=socket.create_connection((host,int(port))); socks.append(s)
slow=[]
for i in range(1000):
    s=socket.create_connection((host,int(port))); s.sendall(b"POST / HTTP/1.1\r\nHost: x\r\n"); slow.append(s)
time.sleep(2)
print(f'{N} idle + 1000 slow:', rss())
lat=[]
c=http.client.HTTPConnection(host,int(port))
for i in range(300):
    t=time.perf_counter(); c.request('POST','/',body='{"id":1,"method":"getblockcount"}',headers={'Authorization':'Basic '+auth}); r=c.getresponse(); r.read(); lat.append(time.perf_counter()-t)
    assert r.status==200
lat.sort(); print('getblockcount p50 %.2f ms p99 %.2f ms'%(lat[150]*1e3, lat[296]*1e3))
c.request('POST','/',body='{"id":1,"method":"getnodestats"}',headers={'Authorization':'Basic '+auth}); print(c.getresponse().read()[:300])
