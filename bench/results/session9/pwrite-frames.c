#include <stdio.h>
#include <fcntl.h>
#include <unistd.h>
#include <time.h>
#include <string.h>
#include <stdlib.h>
static double now(){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+t.tv_nsec*1e-9;}
int main(){int fd=open("/work/pw.test",O_CREAT|O_RDWR|O_TRUNC,0644);char hdr[24];char pg[4096];memset(pg,1,4096);memset(hdr,2,24);
 int N=400,R=200; char*buf=malloc(N*4120);
 for(int rep=0;rep<3;rep++){
 double t=now();
 for(int r=0;r<R;r++){off_t o=0;for(int i=0;i<N;i++){pwrite(fd,hdr,24,o);o+=24;pwrite(fd,pg,4096,o);o+=4096;}}
 double a=now()-t; t=now();
 for(int r=0;r<R;r++){off_t o=0;for(int i=0;i<N;i++){memcpy(buf+o,hdr,24);o+=24;memcpy(buf+o,pg,4096);o+=4096;} pwrite(fd,buf,o,0);}
 double b=now()-t;
 printf("per frame: 2 pwrites %.2f us, coalesced %.2f us\n",a/R/N*1e6,b/R/N*1e6);}
 unlink("/work/pw.test");}
