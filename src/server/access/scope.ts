import type { AgentInfo, EnvAgents, EnvInfo, LocalStatus, ResultOf, StatusResult } from '../../protocol/index.js';
import { NO_ACCESS } from '../ops/layer-reads.js';
import type { AccountRecord } from '../store/types.js';
import { granted } from './grants.js';

/**
 * What an account may read. An admin reads everything; a viewer or an
 * editor reads the environments granted to it (`envs`: an editor changes
 * them too) and its read-only grants (`reads`).
 */
export class ReadScope {
  /** Every environment: nothing to check or filter. */
  readonly all: boolean;
  private readonly grants: readonly string[];

  constructor(account: AccountRecord) {
    this.grants = account.role === 'admin' ? ['*'] : [...account.envs, ...account.reads];
    this.all = this.grants.includes('*');
  }

  /** The grants, as a refusal names them. */
  get described(): string {
    return this.grants.join(', ') || 'none';
  }

  covers(env: string): boolean {
    return this.all || granted(this.grants, env);
  }

  /**
   * The part of a read's answer about environments the account reads: the
   * rows of `env list`, and of `status` every per-environment row, every
   * agent's environments, and the agents `--agent` found. An agent that
   * follows only environments the account may not read is left out; one
   * that follows none yet is shown. Other answers are about one environment,
   * checked before they run (permit).
   */
  answer<O extends keyof ResultOf>(op: O, result: ResultOf[O]): ResultOf[O] {
    if (this.all) return result;
    switch (op) {
      case 'env.list': {
        const r = result as ResultOf['env.list'];
        return { ...r, envs: this.envInfos(r.envs) } as ResultOf[O];
      }
      case 'status': {
        const r = result as StatusResult;
        const cluster = { ...r.cluster, envs: this.envRows(r.cluster.envs) };
        if (r.cluster.found !== undefined) cluster.found = this.agents(r.cluster.found);
        return { ...r, envs: this.envInfos(r.envs), agents: this.agents(r.agents), cluster } as ResultOf[O];
      }
      case 'status.local': {
        const r = result as LocalStatus;
        const out: LocalStatus = { ...r, envs: this.envRows(r.envs) };
        if (r.found !== undefined) out.found = this.agents(r.found);
        return out as ResultOf[O];
      }
      default:
        return result;
    }
  }

  /** The environments it reads, each parent it may not read shown as "(no access)". */
  private envInfos(infos: EnvInfo[]): EnvInfo[] {
    return infos.filter((e) => this.covers(e.env))
      .map((e) => (e.parents === undefined || e.parents.every((p) => this.covers(p)) ? e : { ...e, parents: e.parents.map((p) => (this.covers(p) ? p : NO_ACCESS)) }));
  }

  private envRows(rows: EnvAgents[]): EnvAgents[] {
    return rows.filter((e) => this.covers(e.env));
  }

  private agents<A extends AgentInfo>(agents: A[]): A[] {
    const out: A[] = [];
    for (const agent of agents) {
      const envs = agent.envs.filter((e) => this.covers(e.env));
      if (envs.length > 0 || agent.envs.length === 0) out.push({ ...agent, envs });
    }
    return out;
  }
}
