/**
 * WGSL that several kernels share, kept once in shaders/ and put in front of a kernel's own text
 * here (WGSL has no imports). Compile errors then count lines from the header's start.
 */
import workgroupReduce from '../../../../shaders/workgroup_reduce.wgsl?raw';

/** A kernel that reduces over a 256-thread workgroup (WG, workgroup_sum, workgroup_max, workgroup_sum4). */
export function withWorkgroupReduce(kernel: string): string {
	return `${workgroupReduce}\n${kernel}`;
}
