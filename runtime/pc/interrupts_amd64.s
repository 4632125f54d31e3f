//go:build tamago

// Host interrupt entry for vectors 32-255. The hypervisor takes host
// interrupts to end a guest's run (a VM exit is what it wants: the AMD-V
// INTR intercept or VT-x external-interrupt exiting) and for the devices
// it hands to guests, so each stub just counts the vector, sets its
// pending bit, signals end of interrupt to the local APIC and returns; no
// Go code runs in interrupt context (the handlers run later, from
// DispatchInterrupts). The spurious vector (0xFF) takes no EOI (Intel SDM
// Vol. 3A, 11.9).

#include "textflag.h"

#define LAPIC_EOI	0xfee000b0

TEXT ·irq32<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$32
	JMP	·irqCommon<>(SB)
TEXT ·irq33<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$33
	JMP	·irqCommon<>(SB)
TEXT ·irq34<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$34
	JMP	·irqCommon<>(SB)
TEXT ·irq35<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$35
	JMP	·irqCommon<>(SB)
TEXT ·irq36<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$36
	JMP	·irqCommon<>(SB)
TEXT ·irq37<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$37
	JMP	·irqCommon<>(SB)
TEXT ·irq38<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$38
	JMP	·irqCommon<>(SB)
TEXT ·irq39<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$39
	JMP	·irqCommon<>(SB)
TEXT ·irq40<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$40
	JMP	·irqCommon<>(SB)
TEXT ·irq41<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$41
	JMP	·irqCommon<>(SB)
TEXT ·irq42<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$42
	JMP	·irqCommon<>(SB)
TEXT ·irq43<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$43
	JMP	·irqCommon<>(SB)
TEXT ·irq44<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$44
	JMP	·irqCommon<>(SB)
TEXT ·irq45<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$45
	JMP	·irqCommon<>(SB)
TEXT ·irq46<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$46
	JMP	·irqCommon<>(SB)
TEXT ·irq47<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$47
	JMP	·irqCommon<>(SB)
TEXT ·irq48<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$48
	JMP	·irqCommon<>(SB)
TEXT ·irq49<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$49
	JMP	·irqCommon<>(SB)
TEXT ·irq50<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$50
	JMP	·irqCommon<>(SB)
TEXT ·irq51<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$51
	JMP	·irqCommon<>(SB)
TEXT ·irq52<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$52
	JMP	·irqCommon<>(SB)
TEXT ·irq53<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$53
	JMP	·irqCommon<>(SB)
TEXT ·irq54<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$54
	JMP	·irqCommon<>(SB)
TEXT ·irq55<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$55
	JMP	·irqCommon<>(SB)
TEXT ·irq56<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$56
	JMP	·irqCommon<>(SB)
TEXT ·irq57<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$57
	JMP	·irqCommon<>(SB)
TEXT ·irq58<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$58
	JMP	·irqCommon<>(SB)
TEXT ·irq59<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$59
	JMP	·irqCommon<>(SB)
TEXT ·irq60<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$60
	JMP	·irqCommon<>(SB)
TEXT ·irq61<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$61
	JMP	·irqCommon<>(SB)
TEXT ·irq62<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$62
	JMP	·irqCommon<>(SB)
TEXT ·irq63<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$63
	JMP	·irqCommon<>(SB)
TEXT ·irq64<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$64
	JMP	·irqCommon<>(SB)
TEXT ·irq65<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$65
	JMP	·irqCommon<>(SB)
TEXT ·irq66<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$66
	JMP	·irqCommon<>(SB)
TEXT ·irq67<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$67
	JMP	·irqCommon<>(SB)
TEXT ·irq68<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$68
	JMP	·irqCommon<>(SB)
TEXT ·irq69<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$69
	JMP	·irqCommon<>(SB)
TEXT ·irq70<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$70
	JMP	·irqCommon<>(SB)
TEXT ·irq71<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$71
	JMP	·irqCommon<>(SB)
TEXT ·irq72<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$72
	JMP	·irqCommon<>(SB)
TEXT ·irq73<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$73
	JMP	·irqCommon<>(SB)
TEXT ·irq74<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$74
	JMP	·irqCommon<>(SB)
TEXT ·irq75<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$75
	JMP	·irqCommon<>(SB)
TEXT ·irq76<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$76
	JMP	·irqCommon<>(SB)
TEXT ·irq77<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$77
	JMP	·irqCommon<>(SB)
TEXT ·irq78<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$78
	JMP	·irqCommon<>(SB)
TEXT ·irq79<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$79
	JMP	·irqCommon<>(SB)
TEXT ·irq80<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$80
	JMP	·irqCommon<>(SB)
TEXT ·irq81<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$81
	JMP	·irqCommon<>(SB)
TEXT ·irq82<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$82
	JMP	·irqCommon<>(SB)
TEXT ·irq83<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$83
	JMP	·irqCommon<>(SB)
TEXT ·irq84<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$84
	JMP	·irqCommon<>(SB)
TEXT ·irq85<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$85
	JMP	·irqCommon<>(SB)
TEXT ·irq86<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$86
	JMP	·irqCommon<>(SB)
TEXT ·irq87<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$87
	JMP	·irqCommon<>(SB)
TEXT ·irq88<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$88
	JMP	·irqCommon<>(SB)
TEXT ·irq89<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$89
	JMP	·irqCommon<>(SB)
TEXT ·irq90<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$90
	JMP	·irqCommon<>(SB)
TEXT ·irq91<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$91
	JMP	·irqCommon<>(SB)
TEXT ·irq92<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$92
	JMP	·irqCommon<>(SB)
TEXT ·irq93<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$93
	JMP	·irqCommon<>(SB)
TEXT ·irq94<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$94
	JMP	·irqCommon<>(SB)
TEXT ·irq95<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$95
	JMP	·irqCommon<>(SB)
TEXT ·irq96<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$96
	JMP	·irqCommon<>(SB)
TEXT ·irq97<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$97
	JMP	·irqCommon<>(SB)
TEXT ·irq98<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$98
	JMP	·irqCommon<>(SB)
TEXT ·irq99<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$99
	JMP	·irqCommon<>(SB)
TEXT ·irq100<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$100
	JMP	·irqCommon<>(SB)
TEXT ·irq101<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$101
	JMP	·irqCommon<>(SB)
TEXT ·irq102<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$102
	JMP	·irqCommon<>(SB)
TEXT ·irq103<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$103
	JMP	·irqCommon<>(SB)
TEXT ·irq104<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$104
	JMP	·irqCommon<>(SB)
TEXT ·irq105<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$105
	JMP	·irqCommon<>(SB)
TEXT ·irq106<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$106
	JMP	·irqCommon<>(SB)
TEXT ·irq107<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$107
	JMP	·irqCommon<>(SB)
TEXT ·irq108<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$108
	JMP	·irqCommon<>(SB)
TEXT ·irq109<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$109
	JMP	·irqCommon<>(SB)
TEXT ·irq110<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$110
	JMP	·irqCommon<>(SB)
TEXT ·irq111<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$111
	JMP	·irqCommon<>(SB)
TEXT ·irq112<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$112
	JMP	·irqCommon<>(SB)
TEXT ·irq113<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$113
	JMP	·irqCommon<>(SB)
TEXT ·irq114<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$114
	JMP	·irqCommon<>(SB)
TEXT ·irq115<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$115
	JMP	·irqCommon<>(SB)
TEXT ·irq116<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$116
	JMP	·irqCommon<>(SB)
TEXT ·irq117<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$117
	JMP	·irqCommon<>(SB)
TEXT ·irq118<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$118
	JMP	·irqCommon<>(SB)
TEXT ·irq119<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$119
	JMP	·irqCommon<>(SB)
TEXT ·irq120<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$120
	JMP	·irqCommon<>(SB)
TEXT ·irq121<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$121
	JMP	·irqCommon<>(SB)
TEXT ·irq122<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$122
	JMP	·irqCommon<>(SB)
TEXT ·irq123<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$123
	JMP	·irqCommon<>(SB)
TEXT ·irq124<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$124
	JMP	·irqCommon<>(SB)
TEXT ·irq125<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$125
	JMP	·irqCommon<>(SB)
TEXT ·irq126<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$126
	JMP	·irqCommon<>(SB)
TEXT ·irq127<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$127
	JMP	·irqCommon<>(SB)
TEXT ·irq128<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$128
	JMP	·irqCommon<>(SB)
TEXT ·irq129<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$129
	JMP	·irqCommon<>(SB)
TEXT ·irq130<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$130
	JMP	·irqCommon<>(SB)
TEXT ·irq131<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$131
	JMP	·irqCommon<>(SB)
TEXT ·irq132<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$132
	JMP	·irqCommon<>(SB)
TEXT ·irq133<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$133
	JMP	·irqCommon<>(SB)
TEXT ·irq134<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$134
	JMP	·irqCommon<>(SB)
TEXT ·irq135<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$135
	JMP	·irqCommon<>(SB)
TEXT ·irq136<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$136
	JMP	·irqCommon<>(SB)
TEXT ·irq137<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$137
	JMP	·irqCommon<>(SB)
TEXT ·irq138<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$138
	JMP	·irqCommon<>(SB)
TEXT ·irq139<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$139
	JMP	·irqCommon<>(SB)
TEXT ·irq140<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$140
	JMP	·irqCommon<>(SB)
TEXT ·irq141<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$141
	JMP	·irqCommon<>(SB)
TEXT ·irq142<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$142
	JMP	·irqCommon<>(SB)
TEXT ·irq143<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$143
	JMP	·irqCommon<>(SB)
TEXT ·irq144<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$144
	JMP	·irqCommon<>(SB)
TEXT ·irq145<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$145
	JMP	·irqCommon<>(SB)
TEXT ·irq146<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$146
	JMP	·irqCommon<>(SB)
TEXT ·irq147<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$147
	JMP	·irqCommon<>(SB)
TEXT ·irq148<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$148
	JMP	·irqCommon<>(SB)
TEXT ·irq149<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$149
	JMP	·irqCommon<>(SB)
TEXT ·irq150<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$150
	JMP	·irqCommon<>(SB)
TEXT ·irq151<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$151
	JMP	·irqCommon<>(SB)
TEXT ·irq152<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$152
	JMP	·irqCommon<>(SB)
TEXT ·irq153<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$153
	JMP	·irqCommon<>(SB)
TEXT ·irq154<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$154
	JMP	·irqCommon<>(SB)
TEXT ·irq155<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$155
	JMP	·irqCommon<>(SB)
TEXT ·irq156<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$156
	JMP	·irqCommon<>(SB)
TEXT ·irq157<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$157
	JMP	·irqCommon<>(SB)
TEXT ·irq158<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$158
	JMP	·irqCommon<>(SB)
TEXT ·irq159<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$159
	JMP	·irqCommon<>(SB)
TEXT ·irq160<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$160
	JMP	·irqCommon<>(SB)
TEXT ·irq161<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$161
	JMP	·irqCommon<>(SB)
TEXT ·irq162<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$162
	JMP	·irqCommon<>(SB)
TEXT ·irq163<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$163
	JMP	·irqCommon<>(SB)
TEXT ·irq164<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$164
	JMP	·irqCommon<>(SB)
TEXT ·irq165<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$165
	JMP	·irqCommon<>(SB)
TEXT ·irq166<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$166
	JMP	·irqCommon<>(SB)
TEXT ·irq167<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$167
	JMP	·irqCommon<>(SB)
TEXT ·irq168<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$168
	JMP	·irqCommon<>(SB)
TEXT ·irq169<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$169
	JMP	·irqCommon<>(SB)
TEXT ·irq170<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$170
	JMP	·irqCommon<>(SB)
TEXT ·irq171<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$171
	JMP	·irqCommon<>(SB)
TEXT ·irq172<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$172
	JMP	·irqCommon<>(SB)
TEXT ·irq173<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$173
	JMP	·irqCommon<>(SB)
TEXT ·irq174<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$174
	JMP	·irqCommon<>(SB)
TEXT ·irq175<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$175
	JMP	·irqCommon<>(SB)
TEXT ·irq176<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$176
	JMP	·irqCommon<>(SB)
TEXT ·irq177<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$177
	JMP	·irqCommon<>(SB)
TEXT ·irq178<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$178
	JMP	·irqCommon<>(SB)
TEXT ·irq179<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$179
	JMP	·irqCommon<>(SB)
TEXT ·irq180<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$180
	JMP	·irqCommon<>(SB)
TEXT ·irq181<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$181
	JMP	·irqCommon<>(SB)
TEXT ·irq182<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$182
	JMP	·irqCommon<>(SB)
TEXT ·irq183<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$183
	JMP	·irqCommon<>(SB)
TEXT ·irq184<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$184
	JMP	·irqCommon<>(SB)
TEXT ·irq185<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$185
	JMP	·irqCommon<>(SB)
TEXT ·irq186<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$186
	JMP	·irqCommon<>(SB)
TEXT ·irq187<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$187
	JMP	·irqCommon<>(SB)
TEXT ·irq188<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$188
	JMP	·irqCommon<>(SB)
TEXT ·irq189<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$189
	JMP	·irqCommon<>(SB)
TEXT ·irq190<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$190
	JMP	·irqCommon<>(SB)
TEXT ·irq191<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$191
	JMP	·irqCommon<>(SB)
TEXT ·irq192<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$192
	JMP	·irqCommon<>(SB)
TEXT ·irq193<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$193
	JMP	·irqCommon<>(SB)
TEXT ·irq194<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$194
	JMP	·irqCommon<>(SB)
TEXT ·irq195<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$195
	JMP	·irqCommon<>(SB)
TEXT ·irq196<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$196
	JMP	·irqCommon<>(SB)
TEXT ·irq197<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$197
	JMP	·irqCommon<>(SB)
TEXT ·irq198<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$198
	JMP	·irqCommon<>(SB)
TEXT ·irq199<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$199
	JMP	·irqCommon<>(SB)
TEXT ·irq200<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$200
	JMP	·irqCommon<>(SB)
TEXT ·irq201<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$201
	JMP	·irqCommon<>(SB)
TEXT ·irq202<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$202
	JMP	·irqCommon<>(SB)
TEXT ·irq203<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$203
	JMP	·irqCommon<>(SB)
TEXT ·irq204<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$204
	JMP	·irqCommon<>(SB)
TEXT ·irq205<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$205
	JMP	·irqCommon<>(SB)
TEXT ·irq206<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$206
	JMP	·irqCommon<>(SB)
TEXT ·irq207<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$207
	JMP	·irqCommon<>(SB)
TEXT ·irq208<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$208
	JMP	·irqCommon<>(SB)
TEXT ·irq209<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$209
	JMP	·irqCommon<>(SB)
TEXT ·irq210<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$210
	JMP	·irqCommon<>(SB)
TEXT ·irq211<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$211
	JMP	·irqCommon<>(SB)
TEXT ·irq212<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$212
	JMP	·irqCommon<>(SB)
TEXT ·irq213<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$213
	JMP	·irqCommon<>(SB)
TEXT ·irq214<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$214
	JMP	·irqCommon<>(SB)
TEXT ·irq215<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$215
	JMP	·irqCommon<>(SB)
TEXT ·irq216<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$216
	JMP	·irqCommon<>(SB)
TEXT ·irq217<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$217
	JMP	·irqCommon<>(SB)
TEXT ·irq218<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$218
	JMP	·irqCommon<>(SB)
TEXT ·irq219<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$219
	JMP	·irqCommon<>(SB)
TEXT ·irq220<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$220
	JMP	·irqCommon<>(SB)
TEXT ·irq221<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$221
	JMP	·irqCommon<>(SB)
TEXT ·irq222<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$222
	JMP	·irqCommon<>(SB)
TEXT ·irq223<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$223
	JMP	·irqCommon<>(SB)
TEXT ·irq224<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$224
	JMP	·irqCommon<>(SB)
TEXT ·irq225<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$225
	JMP	·irqCommon<>(SB)
TEXT ·irq226<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$226
	JMP	·irqCommon<>(SB)
TEXT ·irq227<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$227
	JMP	·irqCommon<>(SB)
TEXT ·irq228<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$228
	JMP	·irqCommon<>(SB)
TEXT ·irq229<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$229
	JMP	·irqCommon<>(SB)
TEXT ·irq230<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$230
	JMP	·irqCommon<>(SB)
TEXT ·irq231<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$231
	JMP	·irqCommon<>(SB)
TEXT ·irq232<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$232
	JMP	·irqCommon<>(SB)
TEXT ·irq233<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$233
	JMP	·irqCommon<>(SB)
TEXT ·irq234<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$234
	JMP	·irqCommon<>(SB)
TEXT ·irq235<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$235
	JMP	·irqCommon<>(SB)
TEXT ·irq236<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$236
	JMP	·irqCommon<>(SB)
TEXT ·irq237<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$237
	JMP	·irqCommon<>(SB)
TEXT ·irq238<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$238
	JMP	·irqCommon<>(SB)
TEXT ·irq239<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$239
	JMP	·irqCommon<>(SB)
TEXT ·irq240<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$240
	JMP	·irqCommon<>(SB)
TEXT ·irq241<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$241
	JMP	·irqCommon<>(SB)
TEXT ·irq242<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$242
	JMP	·irqCommon<>(SB)
TEXT ·irq243<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$243
	JMP	·irqCommon<>(SB)
TEXT ·irq244<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$244
	JMP	·irqCommon<>(SB)
TEXT ·irq245<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$245
	JMP	·irqCommon<>(SB)
TEXT ·irq246<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$246
	JMP	·irqCommon<>(SB)
TEXT ·irq247<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$247
	JMP	·irqCommon<>(SB)
TEXT ·irq248<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$248
	JMP	·irqCommon<>(SB)
TEXT ·irq249<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$249
	JMP	·irqCommon<>(SB)
TEXT ·irq250<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$250
	JMP	·irqCommon<>(SB)
TEXT ·irq251<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$251
	JMP	·irqCommon<>(SB)
TEXT ·irq252<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$252
	JMP	·irqCommon<>(SB)
TEXT ·irq253<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$253
	JMP	·irqCommon<>(SB)
TEXT ·irq254<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$254
	JMP	·irqCommon<>(SB)
TEXT ·irq255<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$255
	JMP	·irqCommon<>(SB)

DATA ·irqStubs+0(SB)/8, $·irq32<>(SB)
DATA ·irqStubs+8(SB)/8, $·irq33<>(SB)
DATA ·irqStubs+16(SB)/8, $·irq34<>(SB)
DATA ·irqStubs+24(SB)/8, $·irq35<>(SB)
DATA ·irqStubs+32(SB)/8, $·irq36<>(SB)
DATA ·irqStubs+40(SB)/8, $·irq37<>(SB)
DATA ·irqStubs+48(SB)/8, $·irq38<>(SB)
DATA ·irqStubs+56(SB)/8, $·irq39<>(SB)
DATA ·irqStubs+64(SB)/8, $·irq40<>(SB)
DATA ·irqStubs+72(SB)/8, $·irq41<>(SB)
DATA ·irqStubs+80(SB)/8, $·irq42<>(SB)
DATA ·irqStubs+88(SB)/8, $·irq43<>(SB)
DATA ·irqStubs+96(SB)/8, $·irq44<>(SB)
DATA ·irqStubs+104(SB)/8, $·irq45<>(SB)
DATA ·irqStubs+112(SB)/8, $·irq46<>(SB)
DATA ·irqStubs+120(SB)/8, $·irq47<>(SB)
DATA ·irqStubs+128(SB)/8, $·irq48<>(SB)
DATA ·irqStubs+136(SB)/8, $·irq49<>(SB)
DATA ·irqStubs+144(SB)/8, $·irq50<>(SB)
DATA ·irqStubs+152(SB)/8, $·irq51<>(SB)
DATA ·irqStubs+160(SB)/8, $·irq52<>(SB)
DATA ·irqStubs+168(SB)/8, $·irq53<>(SB)
DATA ·irqStubs+176(SB)/8, $·irq54<>(SB)
DATA ·irqStubs+184(SB)/8, $·irq55<>(SB)
DATA ·irqStubs+192(SB)/8, $·irq56<>(SB)
DATA ·irqStubs+200(SB)/8, $·irq57<>(SB)
DATA ·irqStubs+208(SB)/8, $·irq58<>(SB)
DATA ·irqStubs+216(SB)/8, $·irq59<>(SB)
DATA ·irqStubs+224(SB)/8, $·irq60<>(SB)
DATA ·irqStubs+232(SB)/8, $·irq61<>(SB)
DATA ·irqStubs+240(SB)/8, $·irq62<>(SB)
DATA ·irqStubs+248(SB)/8, $·irq63<>(SB)
DATA ·irqStubs+256(SB)/8, $·irq64<>(SB)
DATA ·irqStubs+264(SB)/8, $·irq65<>(SB)
DATA ·irqStubs+272(SB)/8, $·irq66<>(SB)
DATA ·irqStubs+280(SB)/8, $·irq67<>(SB)
DATA ·irqStubs+288(SB)/8, $·irq68<>(SB)
DATA ·irqStubs+296(SB)/8, $·irq69<>(SB)
DATA ·irqStubs+304(SB)/8, $·irq70<>(SB)
DATA ·irqStubs+312(SB)/8, $·irq71<>(SB)
DATA ·irqStubs+320(SB)/8, $·irq72<>(SB)
DATA ·irqStubs+328(SB)/8, $·irq73<>(SB)
DATA ·irqStubs+336(SB)/8, $·irq74<>(SB)
DATA ·irqStubs+344(SB)/8, $·irq75<>(SB)
DATA ·irqStubs+352(SB)/8, $·irq76<>(SB)
DATA ·irqStubs+360(SB)/8, $·irq77<>(SB)
DATA ·irqStubs+368(SB)/8, $·irq78<>(SB)
DATA ·irqStubs+376(SB)/8, $·irq79<>(SB)
DATA ·irqStubs+384(SB)/8, $·irq80<>(SB)
DATA ·irqStubs+392(SB)/8, $·irq81<>(SB)
DATA ·irqStubs+400(SB)/8, $·irq82<>(SB)
DATA ·irqStubs+408(SB)/8, $·irq83<>(SB)
DATA ·irqStubs+416(SB)/8, $·irq84<>(SB)
DATA ·irqStubs+424(SB)/8, $·irq85<>(SB)
DATA ·irqStubs+432(SB)/8, $·irq86<>(SB)
DATA ·irqStubs+440(SB)/8, $·irq87<>(SB)
DATA ·irqStubs+448(SB)/8, $·irq88<>(SB)
DATA ·irqStubs+456(SB)/8, $·irq89<>(SB)
DATA ·irqStubs+464(SB)/8, $·irq90<>(SB)
DATA ·irqStubs+472(SB)/8, $·irq91<>(SB)
DATA ·irqStubs+480(SB)/8, $·irq92<>(SB)
DATA ·irqStubs+488(SB)/8, $·irq93<>(SB)
DATA ·irqStubs+496(SB)/8, $·irq94<>(SB)
DATA ·irqStubs+504(SB)/8, $·irq95<>(SB)
DATA ·irqStubs+512(SB)/8, $·irq96<>(SB)
DATA ·irqStubs+520(SB)/8, $·irq97<>(SB)
DATA ·irqStubs+528(SB)/8, $·irq98<>(SB)
DATA ·irqStubs+536(SB)/8, $·irq99<>(SB)
DATA ·irqStubs+544(SB)/8, $·irq100<>(SB)
DATA ·irqStubs+552(SB)/8, $·irq101<>(SB)
DATA ·irqStubs+560(SB)/8, $·irq102<>(SB)
DATA ·irqStubs+568(SB)/8, $·irq103<>(SB)
DATA ·irqStubs+576(SB)/8, $·irq104<>(SB)
DATA ·irqStubs+584(SB)/8, $·irq105<>(SB)
DATA ·irqStubs+592(SB)/8, $·irq106<>(SB)
DATA ·irqStubs+600(SB)/8, $·irq107<>(SB)
DATA ·irqStubs+608(SB)/8, $·irq108<>(SB)
DATA ·irqStubs+616(SB)/8, $·irq109<>(SB)
DATA ·irqStubs+624(SB)/8, $·irq110<>(SB)
DATA ·irqStubs+632(SB)/8, $·irq111<>(SB)
DATA ·irqStubs+640(SB)/8, $·irq112<>(SB)
DATA ·irqStubs+648(SB)/8, $·irq113<>(SB)
DATA ·irqStubs+656(SB)/8, $·irq114<>(SB)
DATA ·irqStubs+664(SB)/8, $·irq115<>(SB)
DATA ·irqStubs+672(SB)/8, $·irq116<>(SB)
DATA ·irqStubs+680(SB)/8, $·irq117<>(SB)
DATA ·irqStubs+688(SB)/8, $·irq118<>(SB)
DATA ·irqStubs+696(SB)/8, $·irq119<>(SB)
DATA ·irqStubs+704(SB)/8, $·irq120<>(SB)
DATA ·irqStubs+712(SB)/8, $·irq121<>(SB)
DATA ·irqStubs+720(SB)/8, $·irq122<>(SB)
DATA ·irqStubs+728(SB)/8, $·irq123<>(SB)
DATA ·irqStubs+736(SB)/8, $·irq124<>(SB)
DATA ·irqStubs+744(SB)/8, $·irq125<>(SB)
DATA ·irqStubs+752(SB)/8, $·irq126<>(SB)
DATA ·irqStubs+760(SB)/8, $·irq127<>(SB)
DATA ·irqStubs+768(SB)/8, $·irq128<>(SB)
DATA ·irqStubs+776(SB)/8, $·irq129<>(SB)
DATA ·irqStubs+784(SB)/8, $·irq130<>(SB)
DATA ·irqStubs+792(SB)/8, $·irq131<>(SB)
DATA ·irqStubs+800(SB)/8, $·irq132<>(SB)
DATA ·irqStubs+808(SB)/8, $·irq133<>(SB)
DATA ·irqStubs+816(SB)/8, $·irq134<>(SB)
DATA ·irqStubs+824(SB)/8, $·irq135<>(SB)
DATA ·irqStubs+832(SB)/8, $·irq136<>(SB)
DATA ·irqStubs+840(SB)/8, $·irq137<>(SB)
DATA ·irqStubs+848(SB)/8, $·irq138<>(SB)
DATA ·irqStubs+856(SB)/8, $·irq139<>(SB)
DATA ·irqStubs+864(SB)/8, $·irq140<>(SB)
DATA ·irqStubs+872(SB)/8, $·irq141<>(SB)
DATA ·irqStubs+880(SB)/8, $·irq142<>(SB)
DATA ·irqStubs+888(SB)/8, $·irq143<>(SB)
DATA ·irqStubs+896(SB)/8, $·irq144<>(SB)
DATA ·irqStubs+904(SB)/8, $·irq145<>(SB)
DATA ·irqStubs+912(SB)/8, $·irq146<>(SB)
DATA ·irqStubs+920(SB)/8, $·irq147<>(SB)
DATA ·irqStubs+928(SB)/8, $·irq148<>(SB)
DATA ·irqStubs+936(SB)/8, $·irq149<>(SB)
DATA ·irqStubs+944(SB)/8, $·irq150<>(SB)
DATA ·irqStubs+952(SB)/8, $·irq151<>(SB)
DATA ·irqStubs+960(SB)/8, $·irq152<>(SB)
DATA ·irqStubs+968(SB)/8, $·irq153<>(SB)
DATA ·irqStubs+976(SB)/8, $·irq154<>(SB)
DATA ·irqStubs+984(SB)/8, $·irq155<>(SB)
DATA ·irqStubs+992(SB)/8, $·irq156<>(SB)
DATA ·irqStubs+1000(SB)/8, $·irq157<>(SB)
DATA ·irqStubs+1008(SB)/8, $·irq158<>(SB)
DATA ·irqStubs+1016(SB)/8, $·irq159<>(SB)
DATA ·irqStubs+1024(SB)/8, $·irq160<>(SB)
DATA ·irqStubs+1032(SB)/8, $·irq161<>(SB)
DATA ·irqStubs+1040(SB)/8, $·irq162<>(SB)
DATA ·irqStubs+1048(SB)/8, $·irq163<>(SB)
DATA ·irqStubs+1056(SB)/8, $·irq164<>(SB)
DATA ·irqStubs+1064(SB)/8, $·irq165<>(SB)
DATA ·irqStubs+1072(SB)/8, $·irq166<>(SB)
DATA ·irqStubs+1080(SB)/8, $·irq167<>(SB)
DATA ·irqStubs+1088(SB)/8, $·irq168<>(SB)
DATA ·irqStubs+1096(SB)/8, $·irq169<>(SB)
DATA ·irqStubs+1104(SB)/8, $·irq170<>(SB)
DATA ·irqStubs+1112(SB)/8, $·irq171<>(SB)
DATA ·irqStubs+1120(SB)/8, $·irq172<>(SB)
DATA ·irqStubs+1128(SB)/8, $·irq173<>(SB)
DATA ·irqStubs+1136(SB)/8, $·irq174<>(SB)
DATA ·irqStubs+1144(SB)/8, $·irq175<>(SB)
DATA ·irqStubs+1152(SB)/8, $·irq176<>(SB)
DATA ·irqStubs+1160(SB)/8, $·irq177<>(SB)
DATA ·irqStubs+1168(SB)/8, $·irq178<>(SB)
DATA ·irqStubs+1176(SB)/8, $·irq179<>(SB)
DATA ·irqStubs+1184(SB)/8, $·irq180<>(SB)
DATA ·irqStubs+1192(SB)/8, $·irq181<>(SB)
DATA ·irqStubs+1200(SB)/8, $·irq182<>(SB)
DATA ·irqStubs+1208(SB)/8, $·irq183<>(SB)
DATA ·irqStubs+1216(SB)/8, $·irq184<>(SB)
DATA ·irqStubs+1224(SB)/8, $·irq185<>(SB)
DATA ·irqStubs+1232(SB)/8, $·irq186<>(SB)
DATA ·irqStubs+1240(SB)/8, $·irq187<>(SB)
DATA ·irqStubs+1248(SB)/8, $·irq188<>(SB)
DATA ·irqStubs+1256(SB)/8, $·irq189<>(SB)
DATA ·irqStubs+1264(SB)/8, $·irq190<>(SB)
DATA ·irqStubs+1272(SB)/8, $·irq191<>(SB)
DATA ·irqStubs+1280(SB)/8, $·irq192<>(SB)
DATA ·irqStubs+1288(SB)/8, $·irq193<>(SB)
DATA ·irqStubs+1296(SB)/8, $·irq194<>(SB)
DATA ·irqStubs+1304(SB)/8, $·irq195<>(SB)
DATA ·irqStubs+1312(SB)/8, $·irq196<>(SB)
DATA ·irqStubs+1320(SB)/8, $·irq197<>(SB)
DATA ·irqStubs+1328(SB)/8, $·irq198<>(SB)
DATA ·irqStubs+1336(SB)/8, $·irq199<>(SB)
DATA ·irqStubs+1344(SB)/8, $·irq200<>(SB)
DATA ·irqStubs+1352(SB)/8, $·irq201<>(SB)
DATA ·irqStubs+1360(SB)/8, $·irq202<>(SB)
DATA ·irqStubs+1368(SB)/8, $·irq203<>(SB)
DATA ·irqStubs+1376(SB)/8, $·irq204<>(SB)
DATA ·irqStubs+1384(SB)/8, $·irq205<>(SB)
DATA ·irqStubs+1392(SB)/8, $·irq206<>(SB)
DATA ·irqStubs+1400(SB)/8, $·irq207<>(SB)
DATA ·irqStubs+1408(SB)/8, $·irq208<>(SB)
DATA ·irqStubs+1416(SB)/8, $·irq209<>(SB)
DATA ·irqStubs+1424(SB)/8, $·irq210<>(SB)
DATA ·irqStubs+1432(SB)/8, $·irq211<>(SB)
DATA ·irqStubs+1440(SB)/8, $·irq212<>(SB)
DATA ·irqStubs+1448(SB)/8, $·irq213<>(SB)
DATA ·irqStubs+1456(SB)/8, $·irq214<>(SB)
DATA ·irqStubs+1464(SB)/8, $·irq215<>(SB)
DATA ·irqStubs+1472(SB)/8, $·irq216<>(SB)
DATA ·irqStubs+1480(SB)/8, $·irq217<>(SB)
DATA ·irqStubs+1488(SB)/8, $·irq218<>(SB)
DATA ·irqStubs+1496(SB)/8, $·irq219<>(SB)
DATA ·irqStubs+1504(SB)/8, $·irq220<>(SB)
DATA ·irqStubs+1512(SB)/8, $·irq221<>(SB)
DATA ·irqStubs+1520(SB)/8, $·irq222<>(SB)
DATA ·irqStubs+1528(SB)/8, $·irq223<>(SB)
DATA ·irqStubs+1536(SB)/8, $·irq224<>(SB)
DATA ·irqStubs+1544(SB)/8, $·irq225<>(SB)
DATA ·irqStubs+1552(SB)/8, $·irq226<>(SB)
DATA ·irqStubs+1560(SB)/8, $·irq227<>(SB)
DATA ·irqStubs+1568(SB)/8, $·irq228<>(SB)
DATA ·irqStubs+1576(SB)/8, $·irq229<>(SB)
DATA ·irqStubs+1584(SB)/8, $·irq230<>(SB)
DATA ·irqStubs+1592(SB)/8, $·irq231<>(SB)
DATA ·irqStubs+1600(SB)/8, $·irq232<>(SB)
DATA ·irqStubs+1608(SB)/8, $·irq233<>(SB)
DATA ·irqStubs+1616(SB)/8, $·irq234<>(SB)
DATA ·irqStubs+1624(SB)/8, $·irq235<>(SB)
DATA ·irqStubs+1632(SB)/8, $·irq236<>(SB)
DATA ·irqStubs+1640(SB)/8, $·irq237<>(SB)
DATA ·irqStubs+1648(SB)/8, $·irq238<>(SB)
DATA ·irqStubs+1656(SB)/8, $·irq239<>(SB)
DATA ·irqStubs+1664(SB)/8, $·irq240<>(SB)
DATA ·irqStubs+1672(SB)/8, $·irq241<>(SB)
DATA ·irqStubs+1680(SB)/8, $·irq242<>(SB)
DATA ·irqStubs+1688(SB)/8, $·irq243<>(SB)
DATA ·irqStubs+1696(SB)/8, $·irq244<>(SB)
DATA ·irqStubs+1704(SB)/8, $·irq245<>(SB)
DATA ·irqStubs+1712(SB)/8, $·irq246<>(SB)
DATA ·irqStubs+1720(SB)/8, $·irq247<>(SB)
DATA ·irqStubs+1728(SB)/8, $·irq248<>(SB)
DATA ·irqStubs+1736(SB)/8, $·irq249<>(SB)
DATA ·irqStubs+1744(SB)/8, $·irq250<>(SB)
DATA ·irqStubs+1752(SB)/8, $·irq251<>(SB)
DATA ·irqStubs+1760(SB)/8, $·irq252<>(SB)
DATA ·irqStubs+1768(SB)/8, $·irq253<>(SB)
DATA ·irqStubs+1776(SB)/8, $·irq254<>(SB)
DATA ·irqStubs+1784(SB)/8, $·irq255<>(SB)
GLOBL ·irqStubs(SB), RODATA, $(224*8)

TEXT ·irqCommon<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	AX
	PUSHQ	BX
	MOVQ	16(SP), AX		// vector
	MOVQ	$·irqCounts(SB), BX
	LOCK
	INCQ	(BX)(AX*8)
	// The vector's pending bit, for the handlers Go code runs later
	// (DispatchInterrupts): with a register bit offset, BTS addresses a
	// bit string, so bit AX of the 256-bit bitmap.
	MOVQ	$·irqPending(SB), BX
	LOCK
	BTSQ	AX, (BX)
	CMPQ	AX, $0xff
	JEQ	spurious
	MOVL	$LAPIC_EOI, BX
	MOVL	$0, (BX)
spurious:
	POPQ	BX
	POPQ	AX
	ADDQ	$8, SP
	IRETQ

// func openInterruptWindow()
TEXT ·openInterruptWindow(SB),NOSPLIT,$0
	PUSHFQ
	STI
	NOP		// interrupts are recognised after the instruction following STI
	POPFQ
	RET
