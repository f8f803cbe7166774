#include "textflag.h"

// func getNofile(old *rlimit) uintptr: prlimit64(0, RLIMIT_NOFILE, NULL, old).
TEXT ·getNofile(SB),NOSPLIT,$0-16
	MOVQ	$302, AX
	MOVQ	$0, DI
	MOVQ	$7, SI
	MOVQ	$0, DX
	MOVQ	old+0(FP), R10
	SYSCALL
	MOVQ	AX, ret+8(FP)
	RET
