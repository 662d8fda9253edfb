import json,sys,statistics as st
rows=[json.loads(l) for l in open(sys.argv[1])]
bins=[];shapes=[]
for r in rows:
    if r['bin'] not in bins: bins.append(r['bin'])
    if r['label'] not in shapes: shapes.append(r['label'])
peak=185.0
print("loads:", sorted(set(r['load'] for r in rows)))
print("%-20s"%"shape"+"".join("%28s"%b for b in bins))
for s in shapes:
    line="%-20s"%s
    for b in bins:
        g=[r['gflops'] for r in rows if r['bin']==b and r['label']==s]
        if g: line+="%28s"%("%.1f [%.0f-%.0f] %.2f n%d"%(st.median(g),min(g),max(g),st.median(g)/peak,len(g)))
    print(line)
